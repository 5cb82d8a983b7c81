// `performance.now()` from the start of the instance. The engine's time origin was taken
// when the component was built (its state is in the snapshot every instance starts
// from), so its `now()` would count from the build.
const enginePerformance = globalThis.performance;
const engineNow = () => enginePerformance.now();
let origin;
let timeOrigin;

/** Takes this instance's time origin (the `on-start` export, before anything else). */
export function startClock() {
  origin = engineNow();
  timeOrigin = Date.now();
}

// The engine's `performance.now` cannot be redefined: `performance` itself is replaced.
Object.defineProperty(globalThis, "performance", {
  value: {
    now() {
      if (origin === undefined) startClock();
      return engineNow() - origin;
    },
    get timeOrigin() {
      if (origin === undefined) startClock();
      return timeOrigin;
    },
    toJSON() {
      return { timeOrigin: this.timeOrigin };
    },
  },
  configurable: true,
  writable: true,
});
