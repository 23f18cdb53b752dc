/**
 * jstat 1.9.6 ships no type declarations; these cover only what src/analysis uses (the normal and Student t
 * distributions). Its normal cdf goes through erfc, so tail probabilities stay accurate to ~1e-15 (simple-statistics'
 * cumulativeStdNormalProbability is a 0.01-step table, too coarse for p-values); its Student t cdf goes through the
 * regularized incomplete beta function and accepts fractional degrees of freedom (Welch-Satterthwaite).
 */
declare module "jstat" {
  interface NormalDistribution {
    cdf(x: number, mean: number, sd: number): number;
    inv(p: number, mean: number, sd: number): number;
  }
  interface StudentTDistribution {
    cdf(x: number, dof: number): number;
    inv(p: number, dof: number): number;
  }
  const jStat: { normal: NormalDistribution; studentt: StudentTDistribution };
  export default jStat;
}
