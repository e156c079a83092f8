// Builds the shared-memory addon from source (node-gyp, into native/build/Release), as this
// repository's `npm install` does. Offline, node-gyp needs Node's headers: npm_config_nodedir
// pointing at them (/usr on Debian, whose nodejs package ships /usr/include/node). A failed
// build is not fatal: the prebuilt binary in native/prebuilds is loaded instead.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL(".", import.meta.url));
const r = spawnSync("npx", ["--no-install", "node-gyp", "rebuild", "--silent"], { cwd: dir, stdio: ["ignore", "inherit", "inherit"] });
if (r.status !== 0) {
  process.stderr.write("tsmpi: the shared-memory addon did not build from source; the prebuilt binary in native/prebuilds will be used\n");
}
