import { accessSync, constants, realpathSync, type Stats, statSync } from "node:fs";
import { dirname, resolve, sep } from "node:path";
import { BadInputError } from "../util/errors.js";

/**
 * The output folder is checked before anything is loaded, started or sent: a run that measured for minutes and then
 * could not write results.json would have wasted them. Nothing is created here (the pipeline makes the folder); the
 * checks only read: the path (kernel file systems are refused by name, before any file system call that could block
 * on them), the nearest part of it that exists, and write permission there (access(2), which also says EROFS on a
 * read-only file system, even for root).
 */

/** Kernel file systems: files there are not files (writing /proc/self/... or /sys/... is never an output folder). */
const KERNEL_FS = ["/proc", "/sys"];

const HINT = "--out tokengate-results (a folder that tokengate may create and write)";

function underKernelFs(path: string): string | undefined {
  return KERNEL_FS.find((root) => path === root || path.startsWith(`${root}${sep}`));
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch (e) {
    // ENOTDIR: a part of the path above is a regular file; the walk up finds which.
    if ((e as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
    throw e;
  }
}

/** Throws a BadInputError naming `subject` unless `outDir` is (or can be made as) a writable folder. Returns it resolved. */
export function checkOutDir(outDir: string, subject = "--out"): string {
  const dir = resolve(outDir);
  const bad = (why: string) => new BadInputError(why, { subject, hint: HINT });
  const kernel = underKernelFs(dir);
  if (kernel)
    throw bad(`${dir} is ${dir === kernel ? "" : "under "}${kernel}, a kernel file system, not a place for results`);

  // The nearest part of the path that exists: the folder itself, or the parent a folder would be made in.
  let existing = dir;
  let st: Stats | undefined;
  try {
    st = statOrUndefined(existing);
    while (!st && dirname(existing) !== existing) {
      existing = dirname(existing);
      st = statOrUndefined(existing);
    }
  } catch (e) {
    throw bad(`cannot check ${existing} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  if (!st) throw bad(`no part of ${dir} exists`);
  // A symbolic link (or a bind mount seen through one) into /proc or /sys is refused like the path itself.
  let real = existing;
  try {
    real = realpathSync.native(existing);
  } catch {
    // A path that resolves oddly (e.g. /dev/fd links) is checked by the tests below as it is.
  }
  const realKernel = underKernelFs(real);
  if (realKernel) throw bad(`${dir} leads into ${realKernel} (${real}), a kernel file system, not a place for results`);

  if (!st.isDirectory()) {
    if (existing === dir) {
      throw bad(`${dir} exists and is ${st.isFile() ? "a file" : "not a folder"}; --out names a folder`);
    }
    throw bad(`${existing} is ${st.isFile() ? "a file" : "not a folder"}, so no folder can be made in it for ${dir}`);
  }
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    const why = code === "EROFS" ? "a read-only file system" : code === "EACCES" ? "no permission" : code;
    throw bad(`cannot write in ${existing} (${why})${existing === dir ? "" : `, so ${dir} cannot be made`}`);
  }
  return dir;
}
