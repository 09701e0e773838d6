// The body of a shard worker thread (started by src/serve/shard-worker.ts through shard-worker-boot.mjs): loads shard
// graphs into LocalShards by key and answers their method calls.
// Owns: the worker side of the ShardCall / ShardReply messages. Must not import src/train, tfjs or Kafka.
import { parentPort } from 'node:worker_threads';
import { ServingModel } from './model.ts';
import { LocalShard } from './sharded-scorer.ts';
import type { ShardCall, ShardReply } from './shard-worker.ts';

const port = parentPort;
if (!port)
  throw new Error('shard-worker-main.ts runs only as a worker thread (src/serve/shard-worker.ts)');

const shards = new Map<number, LocalShard>();
const reply = (message: ShardReply, transfer: ArrayBuffer[] = []) =>
  port.postMessage(message, transfer);

function loaded(key: number): LocalShard {
  const shard = shards.get(key);
  if (!shard) throw new Error(`no shard graph loaded under key ${key} (unloaded already?)`);
  return shard;
}

port.on('message', async (message: ShardCall) => {
  try {
    switch (message.method) {
      case 'load': {
        const model = await ServingModel.load(message.bytes, {
          intraOpThreads: message.intraOpThreads,
        });
        const shard = new LocalShard(model);
        shards.set(message.key, shard);
        reply({ call: message.call, result: { metadata: shard.metadata, rows: shard.sharedRows } });
        break;
      }
      case 'unload': {
        const shard = shards.get(message.key);
        shards.delete(message.key);
        await shard?.close();
        reply({ call: message.call, result: undefined });
        break;
      }
      case 'score':
        reply({ call: message.call, result: await loaded(message.key).score(message.request) });
        break;
      case 'counts':
        reply({ call: message.call, result: await loaded(message.key).counts(message.request) });
        break;
      case 'release':
        await loaded(message.key).release(message.id);
        reply({ call: message.call, result: undefined });
        break;
    }
  } catch (error) {
    reply({
      call: message.call,
      error: {
        message: (error as Error).message ?? String(error),
        reason: (error as { reason?: string }).reason,
      },
    });
  }
});
