# Makefile -- "make run" builds wspush and serves on port 8080; "make test"
# runs every test, "make check" the quick ones. The one-command build needs
# no make at all:
#     cc -O2 -o wspush wspush.c sha1.c
CC ?= cc
CFLAGS ?= -std=c99 -Wall -Wextra -Wpedantic -O2
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man/man1
WWWDIR = $(PREFIX)/share/wspush/www

all: wspush

wspush: wspush.c sha1.c sha1.h
	$(CC) $(CFLAGS) -DWWW_INSTALLED='"$(WWWDIR)"' -o $@ wspush.c sha1.c

run: wspush
	./wspush -p 8080

test:
	./test.sh

check:
	./test.sh quick

sanitize: wspush.c sha1.c sha1.h
	$(CC) $(CFLAGS) -g -fsanitize=address,undefined -o wspush-asan wspush.c sha1.c

bench:
	bench/run.sh

# Apply each deliberate bug of tests/mutate.py (its list MUTANTS) to a copy
# of wspush.c and run the tests that should catch it; fails if one survives.
mutate:
	python3 tests/mutate.py

# The binary, the man page, and the pages an installed wspush serves when
# there is no ./www (PREFIX=/usr/local; DESTDIR for packaging). The binary
# is built here, for this PREFIX, whatever ./wspush was built for; the man
# page names the pages' folder under this PREFIX.
install:
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(WWWDIR)
	$(CC) $(CFLAGS) -DWWW_INSTALLED='"$(WWWDIR)"' -o $(DESTDIR)$(BINDIR)/wspush wspush.c sha1.c
	chmod 755 $(DESTDIR)$(BINDIR)/wspush
	sed 's|/usr/local/share/wspush/www|$(WWWDIR)|g' wspush.1 > $(DESTDIR)$(MANDIR)/wspush.1
	chmod 644 $(DESTDIR)$(MANDIR)/wspush.1
	cp www/* $(DESTDIR)$(WWWDIR)/
	chmod 644 $(DESTDIR)$(WWWDIR)/*

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/wspush $(DESTDIR)$(MANDIR)/wspush.1
	rm -rf $(DESTDIR)$(PREFIX)/share/wspush

clean:
	rm -f wspush wspush-asan tests/unit

.PHONY: all run test check sanitize bench mutate install uninstall clean
