// One look-in from the browser: receive-only offer with all ICE candidates, the service
// relays it with a ticket, the agent's answer is verified (Ed25519, WebCrypto) before use.
// The offer may have been made before Start was pressed (PreparedOffer).
import { api } from './common.js';

function b64urlBytes(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function verifyAnswer(agentKey, session, sdp, signature) {
  if (!window.isSecureContext || !crypto.subtle) throw new Error('error.insecure_context');
  const key = await crypto.subtle.importKey('raw', b64urlBytes(agentKey), { name: 'Ed25519' }, false, ['verify']);
  const message = new TextEncoder().encode(`nattillsyn/answer/v1\n${session}\n${sdp}`);
  const ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, b64urlBytes(signature), message);
  if (!ok) throw new Error('error.answer_signature');
}

function gathered(pc, timeoutMs = 2000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener('icegatheringstatechange', check); resolve(); };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    pc.addEventListener('icegatheringstatechange', check);
    setTimeout(done, timeoutMs);
  });
}

function receiver(ice) {
  const pc = new RTCPeerConnection({ iceServers: ice.ice_servers, iceTransportPolicy: ice.ice_transport_policy });
  pc.addTransceiver('video', { direction: 'recvonly' });
  return pc;
}

/** A look-in's receive-only peer with its offer made and its candidates gathered before
 *  Start is pressed, so that neither Chromium's gathering wait (~120 ms) nor the ICE
 *  request is part of the time to first frame. No camera is involved: the offer only
 *  says what this page can receive; the camera opens on the signed ticket, as ever.
 *  `checkId` null: the ICE servers carry nothing per look-in (no TURN credential), so it
 *  may serve any check; otherwise it holds that check's TURN credential and serves no
 *  other. Usable until `lifetimeMs` from now (before its credential ends), once. */
export class PreparedOffer {
  constructor(ice, checkId, lifetimeMs) {
    this.ice = ice; // { ice_servers, ice_transport_policy, expires_at }
    this.checkId = checkId;
    this.madeAt = performance.now();
    this.deadline = this.madeAt + lifetimeMs;
    this.pc = receiver(ice);
    this.state = 'open'; // open -> taken | closed
    this.ready = this.pc.createOffer()
      .then((offer) => this.pc.setLocalDescription(offer))
      .then(() => gathered(this.pc))
      .then(() => this);
  }

  /** Whether a look-in on `checkId` may use it now. */
  fits(checkId) {
    return this.state === 'open' && performance.now() < this.deadline
      && (this.checkId === null || this.checkId === checkId);
  }

  /** Taken by a look-in: nobody else may use or close it. */
  take() {
    this.state = 'taken';
    return this;
  }

  close() {
    if (this.state !== 'open') return;
    this.state = 'closed';
    try { this.pc.close(); } catch (e) { /* already closed */ }
  }
}

export class LookIn {
  constructor(checkId, video, { onEnd, onFirstFrame, iceServers = [], iceTransportPolicy = 'all' } = {}) {
    this.checkId = checkId;
    this.video = video;
    this.onEnd = onEnd || (() => {});
    this.onFirstFrame = onFirstFrame || (() => {});
    this.iceServers = iceServers;
    this.iceTransportPolicy = iceTransportPolicy; // 'relay': TURN-relayed candidates only
    this.prepared = null; // a PreparedOffer for this check, taken before start()
    this.session = null;
    this.seen = null; // a promise: the service accepted that the picture showed
    this.ended = false;
    this.timing = { start: performance.now() };
  }

  async start() {
    const prepared = this.prepared;
    const pc = prepared ? prepared.pc
      : receiver({ ice_servers: this.iceServers, ice_transport_policy: this.iceTransportPolicy });
    this.pc = pc;
    // how long before the press the offer was begun (negative: after it; null: not ahead)
    this.timing.preparedMs = prepared ? Math.round(this.timing.start - prepared.madeAt) : null;
    if (this.ended) { pc.close(); return null; } // closed while the offer was on its way
    const stream = new MediaStream();
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      this.video.srcObject = stream;
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'connected') this.timing.connected = performance.now();
      if (['failed', 'closed', 'disconnected'].includes(pc.connectionState)) this.finish('peer-' + pc.connectionState);
    };
    const firstFrame = () => {
      this.timing.firstFrame = performance.now();
      const ms = Math.round(this.timing.firstFrame - this.timing.start);
      // the service records that this viewer saw the picture: what an outcome rests on
      this.seen = api(`/api/lookins/${this.session}/picture`, { method: 'POST', body: { ttff_ms: ms } })
        .then(() => true, () => false);
      this.seen.then((ok) => this.onFirstFrame(ms, ok));
    };
    if ('requestVideoFrameCallback' in this.video) this.video.requestVideoFrameCallback(firstFrame);
    else this.video.addEventListener('playing', firstFrame, { once: true });

    if (!prepared) {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
    }
    this.timing.offer = performance.now();
    if (this.ended) return null; // closed before a ticket was asked for: no camera opens
    const reply = await api(`/api/checks/${this.checkId}/lookin`, {
      method: 'POST', body: { offer: pc.localDescription.sdp },
    });
    this.timing.answer = performance.now();
    this.session = reply.session;
    this.expiresAt = Date.now() + reply.seconds * 1000;
    await verifyAnswer(reply.agent_key, reply.session, reply.sdp, reply.signature);
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    // the agent stops at expiry by itself; the browser lets go too
    this.timer = setTimeout(() => this.finish('expired'), reply.seconds * 1000 + 250);
    window.nattLastLookin = this.timing;
    return reply;
  }

  async stop() {
    if (this.session && !this.ended) {
      api(`/api/lookins/${this.session}/end`, { method: 'POST' }).catch(() => {});
    }
    this.finish('ended');
  }

  finish(reason) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    try { this.pc?.close(); } catch (e) { /* already closed */ }
    this.video.srcObject = null;
    this.onEnd(reason);
  }
}
