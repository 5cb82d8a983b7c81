// When the package is prepared (installed from its directory, or packed): it carries
// the contract's WIT, copied from the repository's wit/.
import { cpSync, rmSync } from "node:fs";
rmSync(new URL("../wit", import.meta.url), { recursive: true, force: true });
cpSync(new URL("../../../wit", import.meta.url), new URL("../wit", import.meta.url), { recursive: true });
