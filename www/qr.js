// qr.js -- a QR code (ISO/IEC 18004) for a short text such as a URL, drawn
// on a canvas, with no library: byte mode, error correction level M
// (15% of the code may be lost), versions 1 to 10 (21 to 57 modules a
// side, up to 213 bytes). The steps, in the order of the standard:
//   1. The data as bits: mode 0100 (bytes), the length, the bytes, then
//      padding up to the version's capacity.
//   2. Error correction: the codewords are cut into blocks, and each block
//      gets Reed-Solomon codewords over GF(256); blocks are interleaved.
//   3. The matrix: finder, timing and alignment patterns, then the
//      codewords placed in two-module columns, zig-zag from the bottom
//      right; then one of 8 masks, the one whose result scores lowest on
//      the standard's 4 penalty rules; then the format (and version) bits.
// Usage: qr.draw(canvas, text, pixels) draws text's code at pixels a side.
'use strict';

const qr = (() => {
  // Level M, for versions 1..10: codewords in all, error correction
  // codewords per block, blocks (ISO/IEC 18004, Table 9).
  const TOTAL = [0, 26, 44, 70, 100, 134, 172, 196, 242, 292, 346];
  const EC_PER_BLOCK = [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26];
  const BLOCKS = [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5];
  // Where the alignment patterns' centres are, along each axis (Annex E).
  const ALIGN = [[], [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38],
    [6, 24, 42], [6, 26, 46], [6, 28, 50]];

  // The data codewords a version holds at level M.
  const dataCodewords = (v) => TOTAL[v] - EC_PER_BLOCK[v] * BLOCKS[v];

  // The smallest version whose capacity holds n bytes: 4 bits of mode, 8
  // (16 from version 10) of length, 8 a byte. 0 if none does.
  function version(n) {
    for (let v = 1; v <= 10; v++) {
      if (4 + (v < 10 ? 8 : 16) + 8 * n <= 8 * dataCodewords(v)) return v;
    }
    return 0;
  }

  // Step 1: the data codewords of version v for bytes.
  function encode(bytes, v) {
    const bits = [];
    const put = (value, count) => {
      for (let i = count - 1; i >= 0; i--) bits.push((value >>> i) & 1);
    };
    put(4, 4);                              // mode: bytes
    put(bytes.length, v < 10 ? 8 : 16);     // how many
    for (const b of bytes) put(b, 8);
    const capacity = 8 * dataCodewords(v);
    put(0, Math.min(4, capacity - bits.length));    // the terminator
    while (bits.length % 8) bits.push(0);
    const words = [];
    for (let i = 0; i < bits.length; i += 8) {
      let w = 0;
      for (let j = 0; j < 8; j++) w = (w << 1) | bits[i + j];
      words.push(w);
    }
    for (let pad = 0xec; words.length < dataCodewords(v); pad ^= 0xec ^ 0x11) {
      words.push(pad);                      // 11101100, 00010001, ...
    }
    return words;
  }

  // GF(256) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d): the
  // product of a and b.
  function mul(a, b) {
    let p = 0;
    for (let i = 7; i >= 0; i--) {
      p = (p << 1) ^ ((p >>> 7) * 0x11d);
      p ^= ((b >>> i) & 1) * a;
    }
    return p;
  }

  // The Reed-Solomon generator of degree n: the product of (x - 2^i) for
  // i < n, its coefficients highest first, the leading 1 left out.
  function generator(n) {
    let g = [1];
    for (let i = 0, root = 1; i < n; i++, root = mul(root, 2)) {
      const next = new Array(g.length + 1).fill(0);
      for (let j = 0; j < g.length; j++) {
        next[j] ^= g[j];
        next[j + 1] ^= mul(g[j], root);
      }
      g = next;
    }
    return g.slice(1);
  }

  // Step 2: the error correction codewords of data: the remainder of
  // data * x^n divided by the generator.
  function remainder(data, gen) {
    const rest = new Array(gen.length).fill(0);
    for (const d of data) {
      const factor = d ^ rest.shift();
      rest.push(0);
      for (let i = 0; i < gen.length; i++) rest[i] ^= mul(gen[i], factor);
    }
    return rest;
  }

  // Step 2: data cut into blocks (the short ones first), each with its
  // error correction; then the codewords of all blocks interleaved.
  function codewords(data, v) {
    const n = BLOCKS[v], ec = EC_PER_BLOCK[v], gen = generator(ec);
    const short = Math.floor(data.length / n), longer = data.length % n;
    const blocks = [];
    for (let i = 0, at = 0; i < n; i++) {
      const len = short + (i >= n - longer ? 1 : 0);
      blocks.push(data.slice(at, at + len));
      at += len;
    }
    const out = [];
    for (let i = 0; i <= short; i++) {
      for (const b of blocks) if (i < b.length) out.push(b[i]);
    }
    const ecs = blocks.map((b) => remainder(b, gen));
    for (let i = 0; i < ec; i++) for (const e of ecs) out.push(e[i]);
    return out;
  }

  // Step 3: the patterns every code of version v has. Returns the size,
  // the modules (true is dark) and which of them are not for data.
  function patterns(v) {
    const size = 17 + 4 * v;
    const dark = [...Array(size)].map(() => new Array(size).fill(false));
    const fixed = [...Array(size)].map(() => new Array(size).fill(false));
    const set = (x, y, on) => {
      if (x < 0 || y < 0 || x >= size || y >= size) return;
      dark[y][x] = on;
      fixed[y][x] = true;
    };
    // Finders in three corners, with their light separators: rings of
    // 7, 5 and 3 modules, dark, light, dark.
    for (const [cx, cy] of [[3, 3], [size - 4, 3], [3, size - 4]]) {
      for (let dy = -4; dy <= 4; dy++) {
        for (let dx = -4; dx <= 4; dx++) {
          const ring = Math.max(Math.abs(dx), Math.abs(dy));
          set(cx + dx, cy + dy, ring !== 2 && ring !== 4);
        }
      }
    }
    // Alignment patterns: 5 by 5, wherever they miss the finders.
    for (const ay of ALIGN[v]) {
      for (const ax of ALIGN[v]) {
        if (fixed[ay][ax]) continue;
        for (let dy = -2; dy <= 2; dy++) {
          for (let dx = -2; dx <= 2; dx++) set(ax + dx, ay + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
        }
      }
    }
    // Timing patterns: row and column 6, dark on even places.
    for (let i = 8; i < size - 8; i++) {
      set(i, 6, i % 2 === 0);
      set(6, i, i % 2 === 0);
    }
    set(8, size - 8, true);                 // the dark module
    reserveFormat(size, v, set);
    return { size, dark, fixed };
  }

  // Mark where the format and version bits go (written last, by info()):
  // column and row 8 by the top left finder (but where the timing
  // patterns cross them), by the other two, and for version 7 and up, two
  // 6 by 3 blocks.
  function reserveFormat(size, v, set) {
    for (let i = 0; i < 9; i++) {
      if (i === 6) continue;
      set(8, i, false);
      set(i, 8, false);
    }
    for (let i = 0; i < 8; i++) {
      set(size - 1 - i, 8, false);
      set(8, size - 1 - i, false);
    }
    set(8, size - 8, true);
    for (let i = 0; v >= 7 && i < 18; i++) {
      set(size - 11 + (i % 3), Math.floor(i / 3), false);
      set(Math.floor(i / 3), size - 11 + (i % 3), false);
    }
  }

  // Step 3: the codewords' bits in the free modules: pairs of columns from
  // the right, up then down, right module first; column 6 is skipped.
  function place(m, words) {
    let bit = 0;
    for (let right = m.size - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      const upward = ((m.size - 1 - right) >> 1) % 2 === 0;
      for (let k = 0; k < m.size; k++) {
        const y = upward ? m.size - 1 - k : k;
        for (const x of [right, right - 1]) {
          if (m.fixed[y][x]) continue;
          const w = words[bit >> 3];
          m.dark[y][x] = w !== undefined && ((w >> (7 - (bit & 7))) & 1) === 1;
          bit++;
        }
      }
    }
  }

  // The 8 masks: a module at (x, y) is flipped where the mask is true.
  const MASKS = [
    (x, y) => (x + y) % 2 === 0, (x, y) => y % 2 === 0, (x) => x % 3 === 0,
    (x, y) => (x + y) % 3 === 0, (x, y) => (Math.floor(y / 2) + Math.floor(x / 3)) % 2 === 0,
    (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
    (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
    (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
  ];

  // The BCH code of value (count bits) with generator poly, and its value:
  // value shifted left, then the remainder of the division appended.
  function bch(value, count, poly, polyBits) {
    let r = value << (polyBits - 1);
    for (let i = count + polyBits - 2; i >= polyBits - 1; i--) {
      if ((r >>> i) & 1) r ^= poly << (i - polyBits + 1);
    }
    return (value << (polyBits - 1)) | r;
  }

  // Step 3: the format bits (level M is 00, then the mask), XOR 101010000010010,
  // twice; and from version 7, the version bits, twice.
  function info(m, v, mask) {
    const format = bch(mask, 5, 0x537, 11) ^ 0x5412;
    const bitAt = (i) => ((format >>> i) & 1) === 1;
    for (let i = 0; i < 15; i++) {
      // Around the top left finder: along column 8, then row 8.
      const a = i < 6 ? [8, i] : i < 8 ? [8, i + 1] : i === 8 ? [7, 8] : [14 - i, 8];
      // Split between the other two finders.
      const b = i < 8 ? [m.size - 1 - i, 8] : [8, m.size - 15 + i];
      m.dark[a[1]][a[0]] = bitAt(i);
      m.dark[b[1]][b[0]] = bitAt(i);
    }
    if (v < 7) return;
    const version = bch(v, 6, 0x1f25, 13);
    for (let i = 0; i < 18; i++) {
      const on = ((version >>> i) & 1) === 1;
      m.dark[Math.floor(i / 3)][m.size - 11 + (i % 3)] = on;
      m.dark[m.size - 11 + (i % 3)][Math.floor(i / 3)] = on;
    }
  }

  // The penalty of a finished matrix (8.8.2): runs of 5 or more alike,
  // 2 by 2 blocks alike, finder-like runs, and dark far from half.
  function penalty(m) {
    const n = m.size, at = (x, y, across) => (across ? m.dark[y][x] : m.dark[x][y]);
    let score = 0, darkCount = 0;
    for (let across = 0; across < 2; across++) {
      for (let y = 0; y < n; y++) {
        let run = 1, line = '';
        for (let x = 0; x < n; x++) {
          line += at(x, y, across) ? '1' : '0';
          if (x > 0 && at(x, y, across) === at(x - 1, y, across)) run++;
          else run = 1;
          if (run === 5) score += 3;
          else if (run > 5) score += 1;
        }
        for (const f of ['10111010000', '00001011101']) {
          for (let i = line.indexOf(f); i >= 0; i = line.indexOf(f, i + 1)) score += 40;
        }
      }
    }
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        darkCount += m.dark[y][x] ? 1 : 0;
        if (x < n - 1 && y < n - 1 && m.dark[y][x] === m.dark[y][x + 1] &&
            m.dark[y][x] === m.dark[y + 1][x] && m.dark[y][x] === m.dark[y + 1][x + 1]) score += 3;
      }
    }
    return score + 10 * Math.floor(Math.abs(darkCount * 20 - n * n * 10) / (n * n));
  }

  // The whole code for text: its modules, dark or light, row by row; or
  // null if the text is too long for version 10.
  function matrix(text) {
    const bytes = [...new TextEncoder().encode(text)];
    const v = version(bytes.length);
    if (v === 0) return null;
    const words = codewords(encode(bytes, v), v);
    let best = null;
    for (let mask = 0; mask < 8; mask++) {
      const m = patterns(v);
      place(m, words);
      for (let y = 0; y < m.size; y++) {
        for (let x = 0; x < m.size; x++) if (!m.fixed[y][x] && MASKS[mask](x, y)) m.dark[y][x] = !m.dark[y][x];
      }
      info(m, v, mask);
      const score = penalty(m);
      if (best === null || score < best.score) best = { score, m };
    }
    return best.m.dark;
  }

  // Draw text's code on canvas, pixels wide and high, with the 4-module
  // light margin around it that readers need. Returns false if too long.
  function draw(canvas, text, pixels) {
    const dark = matrix(text);
    if (dark === null) return false;
    const modules = dark.length + 8, unit = Math.max(1, Math.floor(pixels / modules));
    canvas.width = canvas.height = unit * modules;
    const g = canvas.getContext('2d');
    g.fillStyle = '#fff';
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.fillStyle = '#000';
    dark.forEach((row, y) => row.forEach((on, x) => {
      if (on) g.fillRect((x + 4) * unit, (y + 4) * unit, unit, unit);
    }));
    return true;
  }

  return { draw, matrix, version };
})();
