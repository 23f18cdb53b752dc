/**
 * Entry of the Action's post step (dist/post.js): stops processes the main step started that are still running.
 * Runs after the job's steps even when the main step failed or was cancelled (post-if: always()).
 */
import * as core from "@actions/core";
import { State } from "./config/action-inputs.js";
import { parseRecorded, stopOwnedProcesses } from "./publish/cleanup.js";

const ownerId = core.getState(State.ownerId);
const recorded = parseRecorded(core.getState(State.serverPids) || "[]");
if (ownerId === "" && recorded.length === 0) {
  core.info("tokengate post: the main step started nothing (mode: report, or it stopped before running)");
} else {
  try {
    await stopOwnedProcesses(ownerId, (line) => core.info(line), 5000, recorded);
  } catch (e) {
    // The post step must never fail a job that passed: cleanup problems are warnings.
    core.warning(
      `tokengate post: could not check for leftover processes: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}
