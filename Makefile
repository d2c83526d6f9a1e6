CC ?= cc
CFLAGS ?= -std=c99 -Wall -Wextra -Wpedantic -O2

all: wspush

wspush: wspush.c sha1.c sha1.h
	$(CC) $(CFLAGS) -o $@ wspush.c sha1.c

run: wspush
	./wspush -p 8080

test:
	./test.sh

sanitize: wspush.c sha1.c sha1.h
	$(CC) $(CFLAGS) -g -fsanitize=address,undefined -o wspush-asan wspush.c sha1.c

bench:
	bench/run.sh

clean:
	rm -f wspush wspush-asan tests/unit

.PHONY: all run test sanitize bench clean
