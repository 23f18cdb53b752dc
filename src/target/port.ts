import { createServer } from "node:net";
import { BadInputError } from "../util/errors.js";

/** Servers tokengate starts bind loopback only: a benchmark server must not be reachable from the network. */
export const LOOPBACK = "127.0.0.1";

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: LOOPBACK, port, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === "object" && address !== null ? address.port : port;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A port that is free on 127.0.0.1 right now. There is a window between closing our probe socket and the server
 * binding it in which another process could take it; callers that choose the port themselves retry on a bind failure.
 */
export function freePort(): Promise<number> {
  return listenOnce(0);
}

/**
 * Checks that a port the user asked for can be bound on 127.0.0.1. Throws BadInputError naming the port when it is taken
 * (EADDRINUSE) or not allowed (EACCES for ports below 1024 without privileges) or out of range.
 */
export async function assertPortUsable(port: number, subject = "--port"): Promise<void> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new BadInputError(`must be an integer from 1 to 65535, got ${port}`, {
      subject,
      hint: "omit the port to let tokengate pick a free one, or pass e.g. --port 8080",
    });
  }
  try {
    await listenOnce(port);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why =
      code === "EADDRINUSE"
        ? "is already in use"
        : code === "EACCES"
          ? "may not be bound by this user"
          : `cannot be bound (${code ?? String(cause)})`;
    throw new BadInputError(`port ${port} on ${LOOPBACK} ${why}`, {
      subject,
      hint: "omit the port to let tokengate pick a free one, or stop whatever listens there",
      cause,
    });
  }
}
