/**
 * Turns the user's TypeScript script into one JavaScript file, once per job, so that ranks start
 * with plain `node` (16 ranks under tsx start ~10× slower: every process boots esbuild).
 * Local imports are bundled; packages stay external, rewritten to absolute paths so the output
 * can live in the job's temporary directory and still load the same modules the script would.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import { UsageError } from "./args.js";

const TS_EXTENSIONS = new Set([".ts", ".mts", ".cts", ".tsx"]);
const JS_EXTENSIONS = new Set([".js", ".mjs", ".cjs"]);

/** The script could not be compiled; `message` is esbuild's report with file:line:column. */
export class CompileError extends Error {
  override name = "CompileError";
}

export function resolveScript(script: string): string {
  const path = resolve(script);
  if (!existsSync(path)) {
    // `tsmpirun -n 4 python3 x.py`, as one would type to mpirun: say what tsmpirun runs.
    const program = !/[./\\]/.test(script) && extname(script) === "";
    const hint = program ? `; tsmpirun runs Node.js scripts (.ts, .js, ...), given as a file, optionally after "node" and its options` : "";
    throw new UsageError(`script not found: ${script} (looked for ${path})${hint}`);
  }
  if (!statSync(path).isFile()) throw new UsageError(`script is not a file: ${script}`);
  const ext = extname(path);
  if (!TS_EXTENSIONS.has(ext) && !JS_EXTENSIONS.has(ext)) {
    throw new UsageError(`script ${script}: expected a .ts, .mts, .cts, .tsx, .js, .mjs or .cjs file`);
  }
  return path;
}

export function needsCompile(path: string): boolean {
  return TS_EXTENSIONS.has(extname(path));
}

/** Bare imports ("tsmpi", "zeromq/v5") resolve as Node would and stay external, by absolute path. */
const externalPackages: esbuild.Plugin = {
  name: "tsmpi-external-packages",
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === "inner" || args.path.startsWith("node:") || /^[A-Za-z]:[\\/]/.test(args.path)) return undefined;
      const r = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: "inner" });
      if (r.errors.length > 0) return { errors: r.errors };
      // Node built-ins ("fs", "path") come back external and unresolved: keep them as written.
      if (r.external || !r.path.startsWith("/")) return { path: args.path, external: true };
      return { path: pathToFileURL(r.path).href, external: true };
    });
  },
};

/** `import.meta.url` and friends keep naming the source file, not the compiled bundle. */
const keepImportMeta: esbuild.Plugin = {
  name: "tsmpi-import-meta",
  setup(build) {
    build.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, (args) => {
      if (args.path.includes("/node_modules/")) return undefined;
      const source = readFileSync(args.path, "utf8");
      if (!source.includes("import.meta")) return undefined;
      const values: Record<string, string> = {
        url: pathToFileURL(args.path).href,
        filename: args.path,
        dirname: resolve(args.path, ".."),
      };
      const contents = source.replace(/\bimport\.meta\.(url|filename|dirname)\b/g, (_, k: string) => JSON.stringify(values[k]));
      const ext = extname(args.path).slice(1);
      const loader = (ext.startsWith("c") || ext.startsWith("m") ? ext.slice(1) : ext) as esbuild.Loader;
      return { contents, loader, resolveDir: resolve(args.path, "..") };
    });
  },
};

/** Compiles `entry` into `outfile` (ESM, with an inline source map for stack traces). */
export async function compileScript(entry: string, outfile: string): Promise<void> {
  try {
    await esbuild.build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      sourcemap: "inline",
      // Resolve packages the way Node does, not the bundler way ("module" fields and conditions).
      mainFields: ["main"],
      conditions: ["node"],
      plugins: [externalPackages, keepImportMeta],
      logLevel: "silent",
    });
  } catch (e) {
    const failure = e as esbuild.BuildFailure;
    if (!failure.errors) throw e;
    const text = await esbuild.formatMessages(failure.errors, { kind: "error", color: false });
    throw new CompileError(`cannot compile ${entry}:\n${text.join("").trimEnd()}`);
  }
}
