/** Placeholder: `resource-guard/testing` is being written. */
export {};
