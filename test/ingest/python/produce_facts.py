"""Publish facts to a tkg facts topic from Python's confluent-kafka (librdkafka), as a non-JS producer would.

Reads one JSON object on stdin:
  brokers      bootstrap servers
  topic        target topic
  schema       path of schemas/Fact.avsc
  batches      [[{subject, relation, object, step}, ...], ...]  sent one after the other
  gap_seconds  sleep between batches (each batch is flushed, i.e. acknowledged, before the gap)
  format       "avro" (single-object encoding written with fastavro) or "json"
  partitioner  librdkafka partitioner (omit for librdkafka's default, consistent_random)
Key = subject. Prints one JSON line: {"sent": n, "partitions": {partition: count}}.
"""
import io
import json
import sys
import time

import fastavro
from confluent_kafka import Producer
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form


def main() -> None:
    config = json.load(sys.stdin)
    schema = parse_schema(json.load(open(config["schema"], encoding="utf-8")))
    # Avro single-object encoding: C3 01 + CRC-64-AVRO fingerprint (little-endian) of the parsing canonical form.
    header = b"\xc3\x01" + bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))

    def encode(fact: dict) -> bytes:
        record = {
            "subject": fact["subject"],
            "relation": fact["relation"],
            "object": fact["object"],
            "step": fact.get("step"),
            "timestamp": fact.get("timestamp"),
        }
        if config.get("format", "avro") == "json":
            return json.dumps(fact).encode("utf-8")
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema, record)
        return header + body.getvalue()

    producer_config = {"bootstrap.servers": config["brokers"], "linger.ms": 5}
    if config.get("partitioner"):
        producer_config["partitioner"] = config["partitioner"]
    producer = Producer(producer_config)
    partitions: dict = {}
    errors: list = []

    def delivered(error, message) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            partitions[message.partition()] = partitions.get(message.partition(), 0) + 1

    sent = 0
    for index, batch in enumerate(config["batches"]):
        if index > 0:
            time.sleep(config.get("gap_seconds", 0))
        for fact in batch:
            while True:
                try:
                    producer.produce(
                        config["topic"], key=fact["subject"].encode("utf-8"), value=encode(fact), on_delivery=delivered
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            sent += 1
        remaining = producer.flush(60)
        if remaining or errors:
            raise SystemExit(f"delivery failed: {remaining} undelivered, errors {errors[:3]}")
    print(json.dumps({"sent": sent, "partitions": partitions}))


if __name__ == "__main__":
    main()
