"""Confluent's own Python serializers against a real schema registry, for the interop tests of src/schemas/registry.ts.

Reads one JSON object on stdin and prints one JSON line.
  mode "produce": {brokers, registry, topic, batches: [{schema: <Avro schema JSON>, records: [...]}]}
      each batch is written with confluent-kafka's AvroSerializer (auto.register.schemas: the writer schema is
      registered under the TopicNameStrategy subject <topic>-value), key = record["subject"] or "" .
      prints {"sent": n, "ids": [schema id of each batch]}
  mode "consume": {brokers, registry, topic, count}
      reads `count` values from the beginning with AvroDeserializer (schema from the registry by the id in each
      value's Confluent header) and prints {"records": [...], "ids": [...]}.
"""
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def produce(config: dict) -> dict:
    registry = SchemaRegistryClient({"url": config["registry"]})
    producer = Producer({"bootstrap.servers": config["brokers"], "partitioner": "murmur2_random"})
    sent = 0
    ids = []
    for batch in config["batches"]:
        serializer = AvroSerializer(registry, json.dumps(batch["schema"]), conf={"auto.register.schemas": True})
        context = SerializationContext(config["topic"], MessageField.VALUE)
        for record in batch["records"]:
            value = serializer(record, context)
            key = str(record.get("subject", "")).encode("utf-8")
            producer.produce(config["topic"], key=key, value=value)
            producer.poll(0)
            sent += 1
        if producer.flush(60):
            raise SystemExit("delivery failed")
        ids.append(int.from_bytes(value[1:5], "big"))
    return {"sent": sent, "ids": ids}


def consume(config: dict) -> dict:
    registry = SchemaRegistryClient({"url": config["registry"]})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": config["brokers"],
            "group.id": f"interop-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([config["topic"]])
    records = []
    ids = []
    try:
        while len(records) < config["count"]:
            message = consumer.poll(30)
            if message is None:
                raise SystemExit(f"no message within 30 s after {len(records)}")
            if message.error():
                raise SystemExit(str(message.error()))
            value = message.value()
            ids.append(int.from_bytes(value[1:5], "big"))
            records.append(deserializer(value, SerializationContext(config["topic"], MessageField.VALUE)))
    finally:
        consumer.close()
    return {"records": records, "ids": ids}


def main() -> None:
    config = json.load(sys.stdin)
    result = produce(config) if config["mode"] == "produce" else consume(config)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
