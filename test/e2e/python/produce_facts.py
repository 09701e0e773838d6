"""A non-JS producer for the split-deployment test: librdkafka (confluent-kafka from PyPI) with its DEFAULT
partitioner, facts read as JSON lines from argv[2] and written to topic argv[1] as JSON values keyed by subject,
one flush per step with a short pause between steps (a producer that sends in bursts)."""
import json
import sys
import time

from confluent_kafka import Producer


def main() -> None:
    brokers, topic, path = sys.argv[1], sys.argv[2], sys.argv[3]
    gap = float(sys.argv[4]) if len(sys.argv) > 4 else 0.2
    producer = Producer({"bootstrap.servers": brokers, "acks": "all", "linger.ms": 5})
    errors = []

    def delivered(error, _message):
        if error is not None:
            errors.append(str(error))

    facts = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    step = None
    sent = 0
    for fact in facts:
        if step is not None and fact["step"] != step:
            producer.flush(30)
            time.sleep(gap)
        step = fact["step"]
        producer.produce(topic, key=fact["subject"], value=json.dumps(fact), on_delivery=delivered)
        producer.poll(0)
        sent += 1
    remaining = producer.flush(30)
    if errors or remaining:
        print(json.dumps({"sent": sent, "errors": errors[:5], "undelivered": remaining}))
        sys.exit(1)
    print(json.dumps({"sent": sent}))


if __name__ == "__main__":
    main()
