export {
  AmqpConnection,
  AmqpLoginRefusedError,
  DEFAULT_NON_FATAL_ERRORS,
  type AmqpConnectionOptions,
  type AmqpEndpoint,
  type AmqpSasl,
  type AmqpTls,
  type ConnectedEvent,
  type DisconnectedEvent,
} from './connection';
export {
  DurableSender,
  SendError,
  type ApplicationPropertyValue,
  type DurableSenderOptions,
  type OutgoingMessage,
  type SendFailureReason,
} from './durable-sender';
export {
  QueueConsumer,
  retryBackoff,
  deadLetterCopy,
  DLQ_AT,
  DLQ_ATTEMPTS,
  DLQ_REASON,
  DLQ_SOURCE_QUEUE,
  type ConsumerOutcomeEvent,
  type HandlerOutcome,
  type MessageHandler,
  type QueueConsumerOptions,
  type ReceivedMessage,
} from './queue-consumer';
