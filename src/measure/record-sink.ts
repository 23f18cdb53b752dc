import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { RequestRecord } from "./record.js";

/**
 * Appends each RequestRecord to records.ndjson the moment its request finishes (one write(2) per record, no
 * buffering in the process), so a crash or a kill loses nothing already measured. Also keeps the records in memory
 * for the test that is running.
 */
export class RecordSink {
  private fd: number | undefined;
  private nextId = 0;

  constructor(readonly file?: string) {
    if (file) {
      mkdirSync(dirname(file), { recursive: true });
      this.fd = openSync(file, "a");
    }
  }

  /** A run-wide unique request id. */
  newId(): number {
    return this.nextId++;
  }

  write(record: RequestRecord): void {
    if (this.fd !== undefined) writeSync(this.fd, `${JSON.stringify(record)}\n`);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
