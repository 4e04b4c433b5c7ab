// Run a Python script under MicroPython (the WebAssembly build) with the portable core.
//
//   node tools/micropython/run.mjs SCRIPT.py [ARG...]
//
// The portable core's sources (agent/core, agent/security, hal with hal/runtime) are copied into MicroPython's
// virtual filesystem at /repo, the working directory, so `import hal.sim` works as on CPython.
// Nothing else of the repository is visible: an import of the CPython-only layers
// (agent/ocpp16, agent/link, agent/app) fails as it would on a board. No shims: what the core
// imports is built in (asyncio, json, os, math, time, struct, errno) or, in this build, frozen
// from micropython-lib (logging, datetime), as a board gets them with `mip install`.
// This port's asyncio has no asyncio.run (the JavaScript event loop drives it): when the
// script defines `async def main()`, the runner awaits main() as a task after the script's
// body. A task, because the port resumes top-level code through a JavaScript timer, a
// millisecond per `await asyncio.sleep(0)`; a task yields to the next without one.
// sys.argv is [SCRIPT, ARG...].
//
// Exit status: 0 when the script ends, 1 on an uncaught Python exception (its traceback goes
// to stderr), 2 on a usage error, 3 when it runs longer than MICROPYTHON_TIMEOUT_S (60).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");
// The portable core: these folders' .py files, with their subfolders'. agent/ only for its
// __init__.py: its other parts are CPython's (websockets, ocpp, the CLI).
const CORE = [["agent", false], ["agent/core", true], ["agent/security", true], ["hal", true]];

function copyPy(FS, srcDir, destDir, recursive) {
    FS.mkdirTree(destDir);
    for (const entry of fs.readdirSync(srcDir, { withFileTypes: true })) {
        const src = path.join(srcDir, entry.name);
        if (entry.isFile() && entry.name.endsWith(".py")) {
            FS.writeFile(destDir + "/" + entry.name, fs.readFileSync(src));
        } else if (recursive && entry.isDirectory() && entry.name !== "__pycache__") {
            copyPy(FS, src, destDir + "/" + entry.name, true);
        }
    }
}

async function main(argv) {
    if (argv.length < 1) {
        process.stderr.write("usage: node run.mjs SCRIPT.py [ARG...]\n");
        return 2;
    }
    const script = argv[0];
    const source = fs.readFileSync(script, "utf8");
    const mp = await loadMicroPython({
        stdout: (line) => process.stdout.write(line + "\n"),
        stderr: (line) => process.stderr.write(line + "\n"),
    });
    for (const [dir, recursive] of CORE) {
        copyPy(mp.FS, path.join(REPO, dir), "/repo/" + dir, recursive);
    }
    mp.globals.set("_argv", [path.basename(script), ...argv.slice(1)]);
    mp.runPython("import os, sys\nos.chdir('/repo')\nsys.argv[:] = list(_argv)\ndel _argv");
    try {
        await mp.runPythonAsync(source);
        await mp.runPythonAsync(
            "if 'main' in globals():\n    import asyncio\n    await asyncio.create_task(main())\n");
    } catch (e) {
        if (e && e.constructor && e.constructor.name === "PythonError") {
            // The script's own frames are "<stdin>" (runPythonAsync takes no file name).
            const traceback = String(e.message).replaceAll('File "<stdin>"', `File "${script}"`);
            process.stderr.write(traceback.trimEnd() + "\n");
            return 1;
        }
        throw e;
    }
    return 0;
}

const timeoutS = Number(process.env.MICROPYTHON_TIMEOUT_S || 60);
const watchdog = setTimeout(() => {
    process.stderr.write(`micropython: still running after ${timeoutS} s\n`);
    process.exit(3);
}, timeoutS * 1000);
watchdog.unref(); // only a watchdog: it must not keep a finished run alive
// A script that waits forever with nothing scheduled ends Node here with status 13 (unsettled
// top-level await); exit explicitly otherwise, as pending port timers would keep Node alive.
process.exit(await main(process.argv.slice(2)));
