// The API reference: TypeDoc over the public API, with every export documented (typedoc.json
// treats a missing doc comment, a broken link or an unexported type in the API as an error).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { expect, it } from "vitest";
import { ROOT } from "./helpers.js";

it("npm run docs builds the API reference without a warning", async () => {
  const out = join(mkdtempSync(join(tmpdir(), "tsmpi-docs-")), "api");
  const r = await execa(process.execPath, [join(ROOT, "node_modules/typedoc/bin/typedoc"), "--out", out], { cwd: ROOT, reject: false });
  expect(r.stderr + r.stdout).not.toContain("warning");
  expect(r.exitCode).toBe(0);
  expect(String(r.stdout)).toContain(`html generated at ${out}`);
}, 120_000);
