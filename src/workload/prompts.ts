import type { Rng } from "../util/rng.js";

/**
 * Synthetic prompts of about N tokens. Each word below is a single token (with its leading space) in the llama SPM
 * vocabulary, so N words give about N prompt tokens (plus BOS and, for chat, the template's tokens). The exact count
 * the server saw is recorded per request from `usage` / `timings`; reports show that, not N.
 *
 * Every prompt starts with a distinct random word sequence, so the server's prompt cache cannot serve one request's
 * prefix to the next (clean TTFT); `cache_prompt: false` is sent as well where the server understands it.
 */
const WORDS = (
  "the of and to in is was for on that with as by at from his her are this be an or it not but which have had " +
  "one were all their there been has when who will more no if out so said what up its about into than them can " +
  "only other new some could time these two may then do first any my now such like our over man me even most made " +
  "after also did many before must through back years where much your way well down should because each just those " +
  "people how too little state good very make world still own see men work long get here between both life being " +
  "under never day same another know while last might us great old year off come since against go came right used " +
  "take three small house water light power city power point music river science model system number order"
).split(" ");

export function makePrompt(approxTokens: number, rng: Rng): string {
  const n = Math.max(1, Math.round(approxTokens));
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(WORDS[rng.int(WORDS.length)]!);
  return words.join(" ");
}
