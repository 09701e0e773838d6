// The model bundle (SPEC section 7): what crosses from training to serving. Owns: the announcement record's shape.
// Pure types; must not import tfjs, onnxruntime, Kafka, src/train or src/serve.

/** A ModelAnnouncement value (schemas/ModelAnnouncement.avsc). */
export interface ModelAnnouncement {
  name: string;
  version: number;
  step: number;
  createdAt: string;
  vocabularyHash: string;
  onnx: Uint8Array | null;
  location: string | null;
  entities: string[];
  relations: string[];
  metadata: Record<string, string>;
}
