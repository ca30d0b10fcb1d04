// A client DataMesh did not write (nats.js) against the secure example:
// an allowed append, a denied one, an anonymous connection, and a client
// that kept the default inbox prefix. See README.md here for how to run it.
// NATS_URL is the node (127.0.0.1:4222 by default); NATS_CA, the CA file
// of a node with tls (certs/ca.pem here), turns TLS on.
import { connect, headers, StringCodec } from "nats";

const server = process.env.NATS_URL || "127.0.0.1:4222";
const tls = process.env.NATS_CA ? { tls: { caFile: process.env.NATS_CA } } : {};
const sc = StringCodec();
const nc = await connect({ servers: server, ...tls, user: "orders-svc", pass: "orders-secret", inboxPrefix: "_INBOX_orders-svc" });
const h = headers();
h.set("ce-type", "OrderPlaced");
h.set("ce-source", "nats.js");
const r = await nc.request("dm.append.order.js-1", sc.encode('{"customer":"js","total":1}'), { headers: h, timeout: 3000 });
console.log("append to order:", sc.decode(r.data));
try {
  await nc.request("dm.append.payment.js-1", sc.encode("{}"), { headers: h, timeout: 3000 });
  console.log("append to payment: answered (unexpected)");
} catch (e) {
  console.log("append to payment:", e.code || e.message);
}
try {
  const anon = await connect({ servers: server, ...tls });
  console.log("anonymous: connected (unexpected)");
  await anon.close();
} catch (e) {
  console.log("anonymous:", e.code || e.message);
}
const defaultInbox = await connect({ servers: server, ...tls, user: "orders-svc", pass: "orders-secret" });
try {
  await defaultInbox.request("dm.read.order.js-1", sc.encode(""), { timeout: 3000 });
  console.log("default inbox prefix: answered (unexpected)");
} catch (e) {
  console.log("default inbox prefix:", e.code || e.message);
}
await defaultInbox.close();
await nc.close();
