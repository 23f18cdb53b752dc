import { existsSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { CouldNotRunError } from "../util/errors.js";
import { packageInfo } from "../util/package-root.js";
import { runCommand } from "../util/run-command.js";

/**
 * node-llama-cpp is the one dependency the bundle cannot carry (native binaries from its own package folder), so
 * `dist/` needs it installed next to it. In this repository and in the runner image it is; an action used with
 * `uses: OWNER/tokengate@v0` on a plain runner gets a checkout of the action without node_modules. There it is
 * installed on first need, at the version package.json pins, with npm (present on GitHub's runners).
 */
export function nodeLlamaCppResolvable(): boolean {
  try {
    import.meta.resolve("node-llama-cpp");
    return true;
  } catch {
    return false;
  }
}

export function pinnedNodeLlamaCpp(): string {
  const pkg = JSON.parse(readFileSync(join(packageInfo().root, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
  };
  const version = pkg.dependencies?.["node-llama-cpp"];
  if (!version) throw new CouldNotRunError("package.json does not pin node-llama-cpp", { subject: "package.json" });
  return version;
}

export async function ensureNodeLlamaCpp(log: (line: string) => void): Promise<void> {
  if (nodeLlamaCppResolvable()) return;
  const root = packageInfo().root;
  const spec = `node-llama-cpp@${pinnedNodeLlamaCpp()}`;
  log(`tokengate: installing ${spec} next to the action (the in-process target and synthetic models need it)`);
  // Into a prefix of its own: `npm install <pkg>` inside the action's folder would install the whole package.json
  // (dev tools included). Then node_modules/node-llama-cpp links to it, where dist/'s imports look.
  const prefix = join(root, ".tokengate-deps");
  // Only this platform's CPU binaries: node-llama-cpp's optional dependencies include its CUDA and Vulkan builds
  // (hundreds of MB), which every linux-x64 install would otherwise download. The in-process target runs on the CPU.
  const binaries = `@node-llama-cpp/${process.platform}-${process.arch}@${pinnedNodeLlamaCpp()}`;
  const r = await runCommand(
    "npm",
    ["install", "--prefix", prefix, "--no-audit", "--no-fund", "--ignore-scripts", "--omit=optional", spec, binaries],
    { onLine: (line) => log(`  npm: ${line}`) },
  );
  if (r.code === 0) {
    mkdirSync(join(root, "node_modules"), { recursive: true });
    const link = join(root, "node_modules", "node-llama-cpp");
    if (!existsSync(link)) symlinkSync(join(prefix, "node_modules", "node-llama-cpp"), link, "dir");
  }
  if (r.code !== 0 || !nodeLlamaCppResolvable()) {
    throw new CouldNotRunError(`installing ${spec} failed (npm exited ${r.code})`, {
      subject: root,
      hint: "run the job in the tokengate runner image, run `npm ci` in the action's folder, or use target: llama-server with a model file",
    });
  }
}
