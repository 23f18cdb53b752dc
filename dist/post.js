import { createRequire as __tokengateCreateRequire } from "node:module";
const require = __tokengateCreateRequire(import.meta.url);
import { k as getState, S as State, l as parseRecorded, i as info, m as stopOwnedProcesses, w as warning } from './chunks/cleanup-CFxEVikh.js';
import 'os';
import 'crypto';
import 'fs';
import 'path';
import 'http';
import 'https';
import 'net';
import 'tls';
import 'events';
import 'assert';
import 'util';
import 'node:assert';
import 'node:net';
import 'node:http';
import 'node:stream';
import 'node:buffer';
import 'node:util';
import 'node:querystring';
import 'node:events';
import 'node:diagnostics_channel';
import './chunks/_commonjsHelpers-Bu8mXMAf.js';
import 'node:tls';
import 'node:zlib';
import 'node:perf_hooks';
import 'node:util/types';
import 'node:worker_threads';
import 'node:url';
import 'node:async_hooks';
import 'node:console';
import 'node:dns';
import 'string_decoder';
import 'child_process';
import 'timers';
import 'node:fs/promises';
import 'node:timers/promises';
import 'node:path';
import './chunks/errors-B0m1Om91.js';

/**
 * Entry of the Action's post step (dist/post.js): stops processes the main step started that are still running.
 * Runs after the job's steps even when the main step failed or was cancelled (post-if: always()).
 */
const ownerId = getState(State.ownerId);
const recorded = parseRecorded(getState(State.serverPids) || "[]");
if (ownerId === "" && recorded.length === 0) {
    info("tokengate post: the main step started nothing (mode: report, or it stopped before running)");
}
else {
    try {
        await stopOwnedProcesses(ownerId, (line) => info(line), 5000, recorded);
    }
    catch (e) {
        // The post step must never fail a job that passed: cleanup problems are warnings.
        warning(`tokengate post: could not check for leftover processes: ${e instanceof Error ? e.message : String(e)}`);
    }
}
