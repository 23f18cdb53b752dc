/**
 * Entry of the GitHub Action (bundled to dist/index.js). It only calls runAction() and is the one place that fails the
 * step: with the verdict gate and publish problems runAction() reports, or with an error's one-paragraph user message.
 */
import * as core from "@actions/core";
import { runAction } from "./action-main.js";
import { stopAllChildren } from "./util/children.js";
import { isTokengateError } from "./util/errors.js";
import { redact } from "./util/secrets.js";

try {
  const result = await runAction();
  if (result.failures.length > 0) core.setFailed(redact(result.failures.join("\n")));
} catch (e) {
  if (isTokengateError(e)) {
    core.setFailed(redact(e.userMessage()));
  } else {
    // Not one of ours: a bug. The stack goes to the debug log, the message to the step.
    core.debug(e instanceof Error ? (e.stack ?? e.message) : String(e));
    core.setFailed(redact(`tokengate: unexpected error: ${e instanceof Error ? e.message : String(e)}`));
  }
} finally {
  // Normally the pipeline has stopped its targets already; this catches a server left behind by an error path.
  await stopAllChildren();
}
