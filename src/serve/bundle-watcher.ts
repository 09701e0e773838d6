// Which bundle a replica serves: every announcement of the served name newer than the current bundle is loaded
// (ONNX session, checked against the announcement), and swapped in once the replica holds the closed steps its term
// needs (up to the bundle's history step; until then it waits as the pending bundle, and the one it replaces keeps
// serving). Corrupt or incompatible announcements are rejected (tkg_models_rejected_total{reason}) and the old bundle
// keeps serving. Owns: the load / check / swap decision and what it says about it. Must not import src/train, tfjs or
// Kafka (src/kafka/model-topic.ts delivers the announcements).
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { TkgMetrics } from '../metrics/metrics.ts';
import {
  bundleFromAnnouncement,
  historyStepOf,
  type ModelAnnouncement,
  type ModelBundle,
} from '../model/bundle.ts';
import type { TermInputs } from '../model/term-inputs.ts';
import { termSpecKey } from '../model/terms.ts';
import { encodeCalibration } from '../model/calibration.ts';
import { ModelRejectedError, type ServingModel } from './model.ts';
import type { Scorer } from './scorer.ts';

export interface BundleWatcherOptions {
  scorer: Scorer;
  /** Only bundles with this name (the announcement key) are served. */
  modelName: string;
  /** The models topic's name, for messages. */
  topic: string;
  terms: TermInputs;
  metrics?: TkgMetrics;
  logger?: Logger;
  /** Called after every swap (e.g. StepCoordinator.onModel). */
  onModel?: (model: ServingModel, bundle: ModelBundle) => Promise<void> | void;
  /**
   * Reads an ONNX file from a location the watcher does not read itself (file paths and file:// URLs it does):
   * the replica passes the chunk topic's reader for `kafka:` locations. Undefined = not a location it knows.
   */
  readLocation?: (location: string, bundle: ModelBundle) => Promise<Uint8Array> | undefined;
  /**
   * Prepares a bundle's ServingModel instead of reading its ONNX file and loading it in the scorer: a front whose
   * shards run in shard replicas (src/serve/remote-shard.ts) builds it from what they hold. Checked as a load is.
   */
  load?: (bundle: ModelBundle) => Promise<ServingModel>;
}

export class BundleWatcher {
  private readonly options: BundleWatcherOptions;
  private pending: { model: ServingModel; bundle: ModelBundle } | undefined;
  /** Every model name seen on the topic (to say what exists when the served name never comes). */
  readonly namesSeen = new Set<string>();
  private swapping: Promise<void> = Promise.resolve();

  constructor(options: BundleWatcherOptions) {
    this.options = options;
  }

  /** Why no bundle serves yet (for errors and readiness), or undefined when one does. */
  waitingFor(): string | undefined {
    const { scorer, modelName, topic } = this.options;
    if (scorer.model) return undefined;
    if (this.pending) {
      const step = historyStepOf(this.pending.bundle);
      return `model ${modelName} version ${this.pending.bundle.version} is loaded and waits for the closed steps up to ${step} on the snapshots topic (this replica has ${this.options.terms.lastStep})`;
    }
    const others = [...this.namesSeen].filter((n) => n !== modelName);
    return others.length > 0
      ? `no model named ${modelName} on ${topic}; it holds ${others.join(', ')} (serve one of those with --model, or train ${modelName})`
      : `no model announced on ${topic} yet; start \`tkg train\` (it announces ${modelName} after the first closed step)`;
  }

  /** One announcement from the models topic, in topic order. Never throws: rejections are counted and logged. */
  async offer(announcement: ModelAnnouncement): Promise<void> {
    const { scorer, metrics, logger, modelName } = this.options;
    this.namesSeen.add(announcement.name);
    if (announcement.name !== modelName) return;
    const newest = this.pending?.bundle.version ?? scorer.model?.version ?? -Infinity;
    if (announcement.version <= newest) {
      logger?.info(
        `model ${announcement.name} version ${announcement.version} ignored: version ${newest} is newer`,
      );
      return;
    }
    try {
      const bundle = bundleFromAnnouncement(announcement);
      const model = this.options.load
        ? await this.options.load(bundle)
        : await scorer.prepare(await graphBytes(bundle, this.options.readLocation), {
            entities: bundle.entities,
            relations: bundle.relations,
          });
      const meta = model.metadata;
      const mismatch =
        meta.version !== bundle.version ||
        meta.step !== bundle.step ||
        meta.vocabularyHash !== bundle.vocabularyHash ||
        termSpecKey(model.terms) !== termSpecKey(bundle.terms) ||
        encodeCalibration(model.calibration) !== encodeCalibration(bundle.calibration);
      if (mismatch) {
        await model.retire();
        throw new ModelRejectedError(
          `the announcement (version ${bundle.version}, step ${bundle.step}, vocabulary ${bundle.vocabularyHash}, ${bundle.terms.kind} term) ` +
            `does not match its ONNX file (version ${meta.version}, step ${meta.step}, vocabulary ${meta.vocabularyHash}, ${model.terms.kind} term)`,
          'incompatible',
        );
      }
      await this.pending?.model.retire();
      this.pending = { model, bundle };
      await this.maybeSwap();
    } catch (error) {
      const reason = error instanceof ModelRejectedError ? error.reason : 'incompatible';
      metrics?.modelsRejected.inc({ reason });
      logger?.warn(
        { err: error },
        `model ${announcement.name} version ${announcement.version} rejected (${reason}): ${(error as Error).message}; version ${scorer.model?.version ?? 'none'} keeps serving`,
      );
    }
  }

  /** Call when closed steps arrived: a pending bundle whose term inputs are now complete is swapped in. */
  maybeSwap(): Promise<void> {
    const next = this.swapping.then(() => this.swapIfReady());
    this.swapping = next.catch(() => undefined);
    return next;
  }

  private async swapIfReady(): Promise<void> {
    const pending = this.pending;
    if (!pending) return;
    const historyStep = pending.model.historyStep;
    if (historyStep !== undefined && !this.options.terms.has(historyStep)) return;
    this.pending = undefined;
    const { scorer, logger } = this.options;
    scorer.swap(pending.model);
    const meta = pending.model.metadata;
    logger?.info(
      `serving model ${pending.bundle.name} version ${meta.version} (step ${meta.step}, ${pending.bundle.terms.kind} term, N=${meta.numEntities}, R=${meta.numRelations})`,
    );
    await this.options.onModel?.(pending.model, pending.bundle);
  }

  async close(): Promise<void> {
    await this.swapping;
    await this.pending?.model.retire();
    this.pending = undefined;
  }
}

/** A bundle's ONNX file: inline, from its location (readLocation first), or a ModelRejectedError saying why not. */
export async function graphBytes(
  bundle: ModelBundle,
  readLocation: BundleWatcherOptions['readLocation'],
): Promise<Uint8Array> {
  if (bundle.onnx && bundle.onnx.length > 0) return bundle.onnx;
  if (bundle.location) {
    const remote = readLocation?.(bundle.location, bundle);
    if (remote) {
      try {
        return await remote;
      } catch (error) {
        throw new ModelRejectedError((error as Error).message, 'corrupt', error);
      }
    }
    // A scheme (two letters or more: not a drive letter) other than file:// is nothing this watcher reads.
    if (/^[a-z][a-z0-9+.-]+:/i.test(bundle.location) && !bundle.location.startsWith('file://')) {
      throw new ModelRejectedError(
        `model location ${bundle.location}: only inline bytes, file paths, file:// URLs and the chunk topic's kafka: locations are supported`,
        'incompatible',
      );
    }
    try {
      return await readFile(bundle.location.replace(/^file:\/\//, ''));
    } catch (error) {
      throw new ModelRejectedError(
        `model location ${bundle.location} cannot be read: ${(error as Error).message}`,
        'corrupt',
        error,
      );
    }
  }
  throw new ModelRejectedError(
    `model ${bundle.name} v${bundle.version} has neither onnx bytes nor a location`,
    'corrupt',
  );
}
