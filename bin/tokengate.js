#!/usr/bin/env node
// Runs the bundled CLI (dist/cli.js, committed and checked by the check-dist workflow).
import "../dist/cli.js";
