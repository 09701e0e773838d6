// Size limits that more than one stage must agree on (the config's defaults and the transports' fallbacks).
// Owns: the numbers only. Must not import anything.

/** Largest model record written by default: an ONNX file up to this size goes inline in its announcement. */
export const DEFAULT_MODEL_MESSAGE_BYTES = 16 * 1024 * 1024;
