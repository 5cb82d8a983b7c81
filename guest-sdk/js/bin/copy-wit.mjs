// Before packing: the package carries the contract's WIT (the repository's wit/).
import { cpSync, rmSync } from "node:fs";
rmSync(new URL("../wit", import.meta.url), { recursive: true, force: true });
cpSync(new URL("../../../wit", import.meta.url), new URL("../wit", import.meta.url), { recursive: true });
