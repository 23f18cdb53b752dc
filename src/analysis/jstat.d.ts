/**
 * jstat 1.9.6 ships no type declarations; these cover only what src/analysis uses (the normal distribution).
 * Its cdf goes through erfc, so tail probabilities stay accurate to ~1e-15 (simple-statistics'
 * cumulativeStdNormalProbability is a 0.01-step table, too coarse for p-values).
 */
declare module "jstat" {
  interface NormalDistribution {
    cdf(x: number, mean: number, sd: number): number;
    inv(p: number, mean: number, sd: number): number;
  }
  const jStat: { normal: NormalDistribution };
  export default jStat;
}
