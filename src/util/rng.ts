/**
 * A small seeded PRNG (sfc32, seeded through splitmix32) for everything that must be reproducible: prompts, arrival
 * schedules, task choices, bootstrap resamples. Math.random is never used where a result depends on it.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [0, n). */
  int(n: number): number;
  /** Standard normal (Box-Muller). */
  normal(): number;
  /** Exponential with the given rate (mean 1/rate). */
  exponential(rate: number): number;
  /** Gamma(shape k, scale θ) (Marsaglia-Tsang); mean kθ, CV 1/sqrt(k). */
  gamma(shape: number, scale: number): number;
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number;
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export function createRng(seed = 1): Rng {
  const sm = splitmix32(seed);
  let a = sm();
  let b = sm();
  let c = sm();
  let d = sm();
  const next = (): number => {
    // sfc32
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  let spare: number | undefined;
  const normal = (): number => {
    if (spare !== undefined) {
      const v = spare;
      spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  const gamma = (shape: number, scale: number): number => {
    if (shape < 1) {
      // Boost: Gamma(k) = Gamma(k+1) * U^(1/k)
      let u = 0;
      while (u === 0) u = next();
      return gamma(shape + 1, scale) * u ** (1 / shape);
    }
    const dd = shape - 1 / 3;
    const cc = 1 / Math.sqrt(9 * dd);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = normal();
        v = 1 + cc * x;
      } while (v <= 0);
      v = v * v * v;
      const u = next();
      if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + dd * (1 - v + Math.log(v))) return dd * v * scale;
    }
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    normal,
    exponential: (rate) => {
      let u = 0;
      while (u === 0) u = next();
      return -Math.log(u) / rate;
    },
    gamma,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
  };
}
