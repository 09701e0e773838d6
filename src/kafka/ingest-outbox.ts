// What ingest sends besides committing: dead letters to <prefix>.facts.dlq and late facts to <prefix>.facts.late,
// each the ORIGINAL key, value and headers plus ours (src/kafka/dead-letters.ts), buffered and sent in batches that
// are acknowledged before the checkpoint that covers their source offsets. Owns: that buffer and its flush. Must
// not decide what is bad or late (IngestState does).
import type { KafkaMessage, Message, Producer } from './client.ts';
import { deadLetter } from './dead-letters.ts';

const OUTBOX_MAX_MESSAGES = 500;
const OUTBOX_MAX_BYTES = 512 * 1024;

export class FactOutbox {
  private entries: Array<{ topic: string; message: Message }> = [];
  private bytes = 0;

  /** Queue `message` (read from `source`) for `topic` with `extra` headers. */
  enqueue(
    topic: string,
    message: KafkaMessage,
    source: { topic: string; partition: number },
    extra: Record<string, string>,
  ): void {
    this.entries.push({ topic, message: deadLetter(message, source, extra) });
    this.bytes += (message.value?.length ?? 0) + (message.key?.length ?? 0) + 256;
  }

  /** Time to flush (bounded memory, bounded batches). */
  full(): boolean {
    return this.entries.length >= OUTBOX_MAX_MESSAGES || this.bytes >= OUTBOX_MAX_BYTES;
  }

  /** Send everything queued (acks from all in-sync replicas) and empty the buffer. */
  async flush(producer: Producer): Promise<void> {
    if (this.entries.length === 0) return;
    const byTopic = new Map<string, Message[]>();
    for (const { topic, message } of this.entries) {
      let list = byTopic.get(topic);
      if (!list) byTopic.set(topic, (list = []));
      list.push(message);
    }
    await producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic.entries()].map(([topic, messages]) => ({ topic, messages })),
    });
    this.entries = [];
    this.bytes = 0;
  }
}
