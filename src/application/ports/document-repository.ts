/**
 * An XDS document repository: where the content of a document lives. The registry knows, for every entry,
 * which repository (repositoryUniqueId) holds its content; a deployment may have several.
 */
export interface DocumentRepository {
  readonly repositoryUniqueId: string;
  /** The content of a document, or null when this repository does not hold it. */
  retrieve(uniqueId: string): Promise<string | null>;
}
