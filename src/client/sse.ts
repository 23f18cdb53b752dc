/**
 * Incremental Server-Sent Events parser (the WHATWG event-stream format, the parts LLM servers use).
 *
 * Feed it decoded text as it arrives; it returns complete events. Handles events split across chunks, several events
 * in one chunk, LF / CRLF / CR line endings (a CR at the end of a chunk may be the first half of a CRLF), comment lines
 * (`: ping`, llama-server's `--sse-ping-interval` keep-alives), multi-line `data:` fields, `event:` names, and a final
 * event without a trailing blank line (flushed by `end()`).
 */
export interface SseEvent {
  event: string;
  data: string;
}

export class SseParser {
  private buffer = "";
  private dataLines: string[] = [];
  private eventName = "";
  private pendingCr = false;

  /** Parses `text` and returns the events it completed. */
  push(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let input = text;
    if (this.pendingCr) {
      // The previous chunk ended in CR: a leading LF here is the rest of that CRLF, not a new (empty) line.
      if (input.startsWith("\n")) input = input.slice(1);
      this.pendingCr = false;
    }
    this.buffer += input;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buffer.slice(start, i);
      if (c === 13) {
        if (i + 1 < this.buffer.length) {
          if (this.buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
      this.line(line, out);
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  /** Call at end of stream: dispatches a last event that had no blank line after it. */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.buffer.length > 0) this.line(this.buffer, out);
    this.buffer = "";
    this.dispatch(out);
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === "") {
      this.dispatch(out);
      return;
    }
    if (line.startsWith(":")) return; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.dataLines.push(value);
    else if (field === "event") this.eventName = value;
    // `id` and `retry` are irrelevant for one-shot LLM streams.
  }

  private dispatch(out: SseEvent[]): void {
    if (this.dataLines.length > 0) {
      out.push({ event: this.eventName || "message", data: this.dataLines.join("\n") });
    }
    this.dataLines = [];
    this.eventName = "";
  }
}
