// Name <-> dense id maps. Owns: a growable vocabulary (ids in order of first appearance).
// The only state here is the map itself (a class because it grows while loading).
export class Vocabulary {
  private readonly ids = new Map<string, number>();
  readonly names: string[] = [];

  /** Id of `name`, assigning the next dense id when it is new. */
  idOf(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(name, id);
      this.names.push(name);
    }
    return id;
  }

  /** Registers a name with a fixed id (from an entity2id file); ids may arrive in any order. */
  assign(name: string, id: number): void {
    this.ids.set(name, id);
    this.names[id] = name;
  }

  lookup(name: string): number | undefined {
    return this.ids.get(name);
  }

  get size(): number {
    return this.names.length;
  }
}
