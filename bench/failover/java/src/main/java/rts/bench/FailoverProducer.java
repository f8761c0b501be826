package rts.bench;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.util.concurrent.atomic.AtomicBoolean;
import jakarta.jms.DeliveryMode;
import jakarta.jms.MessageProducer;
import jakarta.jms.Session;
import jakarta.jms.TextMessage;
import org.apache.activemq.ActiveMQConnection;
import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.transport.TransportListener;

/**
 * bench/failover.js's Java producer: ActiveMQ's failover transport over OpenWire, persistent (synchronous)
 * sends at a fixed rate. stdout, one JSON object per line:
 *   {"ev":"where","t":ms,"uri":"tcp://127.0.0.1:61601"}   connected / resumed on that broker
 *   {"ev":"gap","from":ms,"to":ms,"ms":n}                 time between two accepted sends >= 100 ms
 *   {"ev":"report","sent":n,"accepted":n,"failed":n}       at the end (stdin closed or "stop" read)
 * Args: failoverUrl ratePerSecond queue
 */
public final class FailoverProducer {
  private static synchronized void out(String json) {
    System.out.println(json);
    System.out.flush();
  }

  public static void main(String[] args) throws Exception {
    String url = args[0];
    int rate = Integer.parseInt(args[1]);
    String queue = args[2];
    AtomicBoolean running = new AtomicBoolean(true);
    Thread stdin = new Thread(() -> {
      try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in))) {
        String line;
        while ((line = r.readLine()) != null) if (line.trim().equals("stop")) break;
      } catch (IOException ignored) {
        // stdin closed
      }
      running.set(false);
    });
    stdin.setDaemon(true);
    stdin.start();

    ActiveMQConnectionFactory factory = new ActiveMQConnectionFactory(url);
    ActiveMQConnection connection = (ActiveMQConnection) factory.createConnection();
    connection.addTransportListener(new TransportListener() {
      public void onCommand(Object command) {}
      public void onException(IOException error) {}
      public void transportInterupted() {
        out("{\"ev\":\"interrupted\",\"t\":" + System.currentTimeMillis() + "}");
      }
      public void transportResumed() {
        out("{\"ev\":\"where\",\"t\":" + System.currentTimeMillis() + ",\"uri\":\"" + connection.getTransport().getRemoteAddress() + "\"}");
      }
    });
    connection.start();
    out("{\"ev\":\"where\",\"t\":" + System.currentTimeMillis() + ",\"uri\":\"" + connection.getTransport().getRemoteAddress() + "\"}");
    Session session = connection.createSession(false, Session.AUTO_ACKNOWLEDGE);
    MessageProducer producer = session.createProducer(session.createQueue(queue));
    producer.setDeliveryMode(DeliveryMode.PERSISTENT);
    out("{\"ev\":\"ready\",\"t\":" + System.currentTimeMillis() + "}");

    long sent = 0, accepted = 0, failed = 0;
    long last = System.currentTimeMillis();
    long intervalNanos = 1_000_000_000L / Math.max(1, rate);
    long next = System.nanoTime();
    while (running.get()) {
      TextMessage message = session.createTextMessage("{\"seq\":" + (++sent) + "}");
      try {
        producer.send(message); // persistent: returns once the broker stored it (failover resends in flight)
        accepted++;
        long now = System.currentTimeMillis();
        if (now - last >= 100) out("{\"ev\":\"gap\",\"from\":" + last + ",\"to\":" + now + ",\"ms\":" + (now - last) + "}");
        last = now;
      } catch (Exception error) {
        failed++;
      }
      next += intervalNanos;
      long wait = next - System.nanoTime();
      if (wait > 0) Thread.sleep(wait / 1_000_000L, (int) (wait % 1_000_000L));
      else if (wait < -1_000_000_000L) next = System.nanoTime();
    }
    out("{\"ev\":\"report\",\"sent\":" + sent + ",\"accepted\":" + accepted + ",\"failed\":" + failed + "}");
    try {
      connection.close();
    } catch (Exception ignored) {
      // closing after a run
    }
    System.exit(0);
  }
}
