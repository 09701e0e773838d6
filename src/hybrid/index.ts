// nlsm-h (issue 8): NLSM logits plus a sparse, fitted history term. Owns src/hybrid: the maths (features.ts), the
// incremental history (history.ts), the fit (fit.ts), the forecaster (forecaster.ts), the `tkg eval` factory
// (models.ts) and the serving side (serving.ts). Must not import tfjs, src/train, kafkajs or src/kafka.
export * from './features.ts';
export * from './history.ts';
export * from './fit.ts';
export * from './forecaster.ts';
export * from './models.ts';
export * from './serving.ts';
export * from './live.ts';
