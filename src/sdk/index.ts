/**
 * The RTS SDK: what a small-scale telemedicine system embeds to join the regional hub. See client.ts for the
 * behaviour, docs/messaging.md for the wire protocol (for teams not using this SDK), docs/asyncapi.yaml for the
 * machine-readable contract, and examples/city-system.ts for a worked example.
 */
export {
  RtsClient,
  RtsJoinError,
  RtsSendError,
  MAX_BODY_BYTES,
  DEFAULT_DEAD_LETTER_QUEUE,
  DEFAULT_DOWNLINK_QUEUE_PREFIX,
  DEFAULT_UPLINK_QUEUE,
  resolveEndpoints,
  type DeliveryInfo,
  type DownlinkHandlers,
  type JoinOptions,
  type JoinResult,
  type RtsClientEvents,
  type RtsClientOptions,
  type RtsLogger,
  type RtsSendFailure,
  type SendOptions,
  type SubscribeOptions,
  type Subscription,
  type UnknownDownlink,
} from './client';
export {
  JsonCodec,
  jsonCodec,
  type AnyEnvelope,
  type ApplicationProperties,
  type DecodeContext,
  type DecodeFailure,
  type DecodeResult,
  type EncodeContext,
  type EncodedMessage,
  type MessageCodec,
} from './codec';
export { BoundedSeenStore, OncePerId, type SeenStore } from './seen-store';
export {
  DOWNLINK_TYPES,
  MAX_BATCH_EXPERTS,
  UPLINK_TYPES,
  parseDownlink,
  type Availability,
  type DirectoryExpert,
  type DownlinkEnvelope,
  type DownlinkOf,
  type DownlinkType,
  type ExpertProfile,
  type UplinkEnvelope,
  type UplinkOf,
  type UplinkType,
  type UploadedExpert,
} from '../adapters/messaging/messages';
export { AmqpLoginRefusedError, DLQ_AT, DLQ_ATTEMPTS, DLQ_REASON, DLQ_SOURCE_QUEUE, type AmqpEndpoint, type AmqpSasl, type AmqpTls, type ConnectedEvent, type DisconnectedEvent, type ConsumerOutcomeEvent } from '../adapters/amqp';
export { openSdkDiscovery, type DiscoveryOption } from './discovery';
export {
  HUB_PARTY,
  JoseCodec,
  JoseError,
  KeyRegistry,
  SdkJoseCodec,
  exportPartyKeys,
  fetchHubJwks,
  generateEncryptionKey,
  generatePartyKeys,
  generateSigningKey,
  importPartyKeys,
  joseCodecFor,
  HUB_KEYS_REFRESH_INTERVAL_MS,
  kidOf,
  publicJwks,
  registerHubJwks,
  registerSystem,
  type JoseErrorCode,
  type PartyKeys,
  type StoredPartyKeys,
} from './security';
export {
  CONSULTATION_DOWNLINK_TYPES,
  CONSULTATION_UPLINK_TYPES,
  parseConsultationDownlink,
  type ConsultationDownlinkEnvelope,
  type ConsultationDownlinkOf,
  type ConsultationDownlinkType,
  type ConsultationUplinkEnvelope,
  type ConsultationUplinkOf,
  type ConsultationUplinkPayloads,
  type ConsultationUplinkType,
} from '../adapters/messaging/consultation-messages';
