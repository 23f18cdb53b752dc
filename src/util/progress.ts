import cliProgress from "cli-progress";

/**
 * Progress for long work. On a terminal: a cli-progress bar (chosen over hand-drawn bars: it handles redraw, ETA and
 * non-TTY fallbacks well and is widely used). Elsewhere (CI logs): a plain line at most every `intervalMs`, so a log
 * shows the job is alive without flooding it.
 */
export interface Progress {
  update(value: number, detail?: string): void;
  done(detail?: string): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  unit?: string;
  /** Where lines go; stderr by default so stdout stays machine-readable. */
  stream?: NodeJS.WriteStream;
  intervalMs?: number;
  /** Print nothing (e.g. `--print-path`, tests). */
  quiet?: boolean;
}

export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet) return { update() {}, done() {} };
  // A bar needs a total; time-bound tests (ramp, stress, open loop) only know a count, shown as plain lines.
  if (stream.isTTY && !process.env.CI && opts.total > 0) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: `${opts.label} [{bar}] {percentage}% | {value}/{total} ${opts.unit ?? ""} | {detail}`,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(opts.total, 0, { detail: "" });
    return {
      update: (value, detail = "") => bar.update(Math.min(value, opts.total), { detail }),
      done: (detail = "") => {
        bar.update(opts.total, { detail });
        bar.stop();
      },
    };
  }
  const intervalMs = opts.intervalMs ?? 10_000;
  let last = 0;
  return {
    update(value, detail) {
      const now = Date.now();
      if (now - last < intervalMs) return;
      last = now;
      const unit = opts.unit ? ` ${opts.unit}` : "";
      const amount =
        opts.total > 0
          ? `${Math.round((100 * value) / opts.total)}% (${value}/${opts.total}${unit})`
          : `${value}${unit}`;
      stream.write(`${opts.label}: ${amount}${detail ? ` ${detail}` : ""}\n`);
    },
    done(detail) {
      stream.write(`${opts.label}: done${detail ? ` ${detail}` : ""}\n`);
    },
  };
}
