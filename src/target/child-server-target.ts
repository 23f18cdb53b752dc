import type { ChildProcess } from "node:child_process";
import { stopChild } from "../util/children.js";
import { CouldNotRunError } from "../util/errors.js";
import type { Endpoint, Target, TargetFingerprint, TargetKind } from "./types.js";

/**
 * The lifecycle both spawned targets share (llama-server, and the in-process target's forked child): start once,
 * stop waits for a start in flight and then for the child to be gone (SIGTERM, then SIGKILL after the grace period),
 * alive while the child runs, and its pid so the machine-load sampler counts the server's CPU as ours. Subclasses
 * spawn the child in `doStart`, set `child`, `exited` and `endpoint`, and honour `lifetime.signal`.
 */
export abstract class ChildServerTarget implements Target {
  abstract readonly kind: TargetKind;
  abstract readonly logFile: string;
  /** Aborted by stop(): a start in flight stops its child and rejects. */
  protected readonly lifetime = new AbortController();
  protected child: ChildProcess | undefined;
  protected exited = false;
  protected endpoint: Endpoint | undefined;
  private startPromise: Promise<Endpoint> | undefined;
  private stopPromise: Promise<void> | undefined;

  constructor(
    /** `the in-process target was stopped`: the reason a start in flight rejects with. */
    private readonly stoppedMessage: string,
    private readonly stopGraceMs: number,
  ) {}

  protected abstract doStart(signal?: AbortSignal): Promise<Endpoint>;
  abstract fingerprint(): Promise<TargetFingerprint>;

  start(signal?: AbortSignal): Promise<Endpoint> {
    this.startPromise ??= this.doStart(signal);
    return this.startPromise;
  }

  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      this.lifetime.abort(new CouldNotRunError(this.stoppedMessage));
      // A start in flight notices the abort, stops its child and rejects; wait for that so stop() means "gone".
      await this.startPromise?.catch(() => {});
      if (this.child && !this.exited) await stopChild(this.child, this.stopGraceMs);
    })();
    return this.stopPromise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  alive(): boolean {
    const c = this.child;
    return (
      this.endpoint !== undefined && c !== undefined && c.exitCode === null && c.signalCode === null && !this.exited
    );
  }

  /** The server's process id while it runs (tests check that it is gone after stop). */
  pid(): number | undefined {
    return this.child?.pid;
  }
}
