/**
 * A small, fast, seeded PRNG (xoshiro128**, seeded through splitmix32) with uniform, integer,
 * normal and shuffle helpers. Normals come from a 128-layer ziggurat (exact standard normal, a
 * few ns each), so hundreds of millions of workload values are cheap. Every generated workload
 * input and every sampled verification row comes from here, so a seed reproduces a run exactly.
 * @module
 */

function _splitmix32(state: { x: number }): number {
  state.x = (state.x + 0x9E3779B9) | 0;
  let z = state.x;
  z = Math.imul(z ^ (z >>> 16), 0x85EBCA6B);
  z = Math.imul(z ^ (z >>> 13), 0xC2B2AE35);
  return (z ^ (z >>> 16)) >>> 0;
}

const _INV_2_32 = 1 / 4294967296;

// Ziggurat tables for the standard normal (128 layers; Marsaglia & Tsang's construction),
// for a signed 25-bit value (range ±2^24) and a 7-bit layer index taken from one 32-bit draw.
const _ZIG_R = 3.442619855899;
const _ZIG_V = 9.91256303526217e-3;
const _ZIG_M = 16777216; // 2^24
const _zigK = new Float64Array(128);
const _zigW = new Float64Array(128);
const _zigF = new Float64Array(128);
{
  let d = _ZIG_R, t = _ZIG_R;
  const q = _ZIG_V / Math.exp(-0.5 * d * d);
  _zigK[0] = (d / q) * _ZIG_M;
  _zigK[1] = 0;
  _zigW[0] = q / _ZIG_M;
  _zigW[127] = d / _ZIG_M;
  _zigF[0] = 1;
  _zigF[127] = Math.exp(-0.5 * d * d);
  for (let i = 126; i >= 1; i--) {
    d = Math.sqrt(-2 * Math.log(_ZIG_V / d + Math.exp(-0.5 * d * d)));
    _zigK[i + 1] = (d / t) * _ZIG_M;
    t = d;
    _zigF[i] = Math.exp(-0.5 * d * d);
    _zigW[i] = d / _ZIG_M;
  }
}

/**
 * xoshiro128** generator. Construct with {@linkcode createRng}; `fork(stream)` derives an
 * independent generator for a numbered stream of the same seed.
 *
 * @example
 * ```ts
 * import { createRng } from "./random.ts";
 * const a = createRng(42), b = createRng(42);
 * if (a.nextU32() !== b.nextU32()) throw new Error("not deterministic");
 * ```
 */
export class Rng {
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;
  readonly #seed: number;
  readonly #stream: number;

  /** Seeds from a number (any safe integer; the fractional part is dropped) and a stream id. */
  constructor(seed: number, stream = 0) {
    this.#seed = seed;
    this.#stream = stream;
    const lo = Math.trunc(seed) >>> 0;
    const hi = Math.floor(Math.trunc(seed) / 4294967296) >>> 0;
    const state = { x: (lo ^ Math.imul(hi, 0x27D4EB2F) ^ Math.imul(stream + 1, 0x165667B1)) | 0 };
    this.#s0 = _splitmix32(state);
    this.#s1 = _splitmix32(state);
    this.#s2 = _splitmix32(state);
    this.#s3 = _splitmix32(state);
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 1;
  }

  /** An independent generator for stream `stream` of this generator's seed. */
  fork(stream: number): Rng {
    return new Rng(this.#seed, this.#stream * 7919 + stream + 1);
  }

  /** Next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const s1 = this.#s1;
    const m = Math.imul(s1, 5);
    const r = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = (this.#s3 << 11) | (this.#s3 >>> 21);
    return r;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextU32() * _INV_2_32;
  }

  /** Uniform integer in [0, n) for 1 <= n <= 2^32 (multiply-shift; bias < n / 2^32). */
  int(n: number): number {
    return Math.floor(this.nextU32() * _INV_2_32 * n);
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** A standard normal value (ziggurat). */
  normal(): number {
    const u = this.nextU32();
    const i = u & 127, h = (u | 0) >> 7;
    if (Math.abs(h) < _zigK[i]!) return h * _zigW[i]!;
    return this.#normalSlow(h, i);
  }

  /** Ziggurat rejection path (about 1.2% of draws): wedges and the tail beyond r. */
  #normalSlow(h: number, i: number): number {
    for (;;) {
      if (i === 0) {
        let x: number, y: number;
        do {
          x = -Math.log((this.nextU32() + 0.5) * _INV_2_32) / _ZIG_R;
          y = -Math.log((this.nextU32() + 0.5) * _INV_2_32);
        } while (y + y < x * x);
        return h > 0 ? _ZIG_R + x : -_ZIG_R - x;
      }
      const x = h * _zigW[i]!;
      if (_zigF[i]! + this.next() * (_zigF[i - 1]! - _zigF[i]!) < Math.exp(-0.5 * x * x)) return x;
      const u = this.nextU32();
      i = u & 127;
      h = (u | 0) >> 7;
      if (Math.abs(h) < _zigK[i]!) return h * _zigW[i]!;
    }
  }

  /**
   * Fills `out[start, start + count)` with standard normals times `std` (the same sequence as
   * repeated `normal()` calls, generated with the state in locals).
   */
  fillNormal(
    out: Float16Array | Float32Array | Float64Array,
    start = 0,
    count = out.length - start,
    std = 1,
  ): void {
    let s0 = this.#s0, s1 = this.#s1, s2 = this.#s2, s3 = this.#s3;
    const end = start + count;
    for (let k = start; k < end; k++) {
      const m = Math.imul(s1, 5);
      const u = Math.imul((m << 7) | (m >>> 25), 9);
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      const i = u & 127, h = u >> 7;
      if (Math.abs(h) < _zigK[i]!) {
        out[k] = h * _zigW[i]! * std;
      } else {
        this.#s0 = s0;
        this.#s1 = s1;
        this.#s2 = s2;
        this.#s3 = s3;
        out[k] = this.#normalSlow(h, i) * std;
        s0 = this.#s0;
        s1 = this.#s1;
        s2 = this.#s2;
        s3 = this.#s3;
      }
    }
    this.#s0 = s0;
    this.#s1 = s1;
    this.#s2 = s2;
    this.#s3 = s3;
  }

  /** Fills a byte view with random bytes (32 bits per step on the aligned part). */
  fillBytes(out: Uint8Array): void {
    const n = out.length;
    let i = 0;
    const misalign = (4 - (out.byteOffset & 3)) & 3;
    for (; i < Math.min(misalign, n); i++) out[i] = this.nextU32() & 0xFF;
    const words = Math.floor((n - i) / 4);
    if (words > 0) {
      const w = new Uint32Array(out.buffer, out.byteOffset + i, words);
      let s0 = this.#s0, s1 = this.#s1, s2 = this.#s2, s3 = this.#s3;
      for (let k = 0; k < words; k++) {
        const m = Math.imul(s1, 5);
        w[k] = Math.imul((m << 7) | (m >>> 25), 9);
        const t = s1 << 9;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = (s3 << 11) | (s3 >>> 21);
      }
      this.#s0 = s0;
      this.#s1 = s1;
      this.#s2 = s2;
      this.#s3 = s3;
      i += words * 4;
    }
    for (; i < n; i++) out[i] = this.nextU32() & 0xFF;
  }

  /** Shuffles `a` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

/**
 * A seeded generator ({@linkcode Rng}); equal seeds and streams give equal sequences.
 *
 * @example
 * ```ts
 * import { createRng } from "./random.ts";
 * const rng = createRng(7);
 * const x = rng.normal(), k = rng.int(10);
 * if (!Number.isFinite(x) || k < 0 || k >= 10) throw new Error("out of range");
 * ```
 */
export function createRng(seed: number, stream = 0): Rng {
  return new Rng(seed, stream);
}

/**
 * A fresh random seed (for runs whose seed is not pinned): a non-negative safe integer < 2^48.
 *
 * @example
 * ```ts
 * import { randomSeed } from "./random.ts";
 * const s = randomSeed();
 * if (!Number.isSafeInteger(s) || s < 0) throw new Error("bad seed");
 * ```
 */
export function randomSeed(): number {
  const w = new Uint32Array(2);
  crypto.getRandomValues(w);
  return (w[0]! & 0xFFFF) * 4294967296 + w[1]!;
}
