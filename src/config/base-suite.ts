/**
 * The base branch's copy of a suite file, for the Action's `mode: ab` (what `--base-suite <(git show origin/main:
 * perf/suite.yml)` does on the command line): `git show <ref>:<path>` written next to the results, so the base arm
 * measures the suite as the base branch has it. git runs with an argument array, never a shell.
 */
import { execFile } from "node:child_process";
import { realpathSync, writeFileSync } from "node:fs";
import { dirname, extname, join, relative } from "node:path";

export interface BaseSuite {
  /** The base copy, when the ref has one. */
  file?: string;
  /** One line for the summary: what was read, or why the head's suite serves both arms. */
  note: string;
}

function git(args: string[], cwd: string): Promise<{ ok: boolean; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile("git", args, { cwd, maxBuffer: 8 * 1024 * 1024, encoding: "utf8" }, (error, stdout, stderr) => {
      resolve({ ok: !error, out: String(stdout), err: String(stderr || (error ? error.message : "")) });
    });
  });
}

/**
 * Reads `ref:<suite path>` from the repository that holds `suiteFile` into `outDir`. Never throws for git's answers:
 * a ref that is not fetched, a suite that is new in the pull request or no git at all leave `file` unset with a note.
 */
export async function baseSuiteFromGit(suiteFile: string, ref: string, outDir: string): Promise<BaseSuite> {
  let real: string;
  try {
    real = realpathSync(suiteFile);
  } catch {
    return { note: `cannot read ${suiteFile}: the head's suite is not there either` };
  }
  const top = await git(["rev-parse", "--show-toplevel"], dirname(real));
  if (!top.ok) return { note: `${suiteFile} is not in a git checkout, so the base's copy cannot be read` };
  const root = top.out.trim();
  const path = relative(root, real).split("\\").join("/");
  const shown = await git(["show", `${ref}:${path}`], root);
  if (!shown.ok) {
    const unknownRef = /unknown revision|bad revision|invalid object name|not a valid object/i.test(shown.err);
    return {
      note: unknownRef
        ? `the base ref ${ref} is not in this checkout (actions/checkout fetches one commit unless fetch-depth: 0), so both arms use the head's ${path}`
        : `${ref} has no ${path} (new in this pull request?), so both arms use the head's copy`,
    };
  }
  const file = join(outDir, `base-suite${extname(path) || ".yml"}`);
  writeFileSync(file, shown.out);
  return { file, note: `the base arm uses ${ref}:${path}` };
}
