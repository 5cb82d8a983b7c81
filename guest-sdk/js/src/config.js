// The tenant's configuration (`wasi:config`): the operator's `[tenants.NAME.config]`
// and secrets, and what the admin API set.
import { get as configGet, getAll } from "wasi:config/store@0.2.0-rc.1";
import { errorOf } from "./errors.js";

export const config = {
  /** The value named `name`, or `undefined` when there is none. */
  get(name) {
    try {
      return configGet(name) ?? undefined;
    } catch (error) {
      throw errorOf(error, "the configuration could not be read");
    }
  },
  /** Every name and value, as an object. */
  all() {
    try {
      return Object.fromEntries(getAll());
    } catch (error) {
      throw errorOf(error, "the configuration could not be read");
    }
  },
};
