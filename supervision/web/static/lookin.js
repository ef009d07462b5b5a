// One look-in from the browser: receive-only offer with all ICE candidates, the service
// relays it with a ticket, the agent's answer is verified (Ed25519, WebCrypto) before use.
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

export class LookIn {
  constructor(checkId, video, { onEnd, onFirstFrame, iceServers = [], iceTransportPolicy = 'all' } = {}) {
    this.checkId = checkId;
    this.video = video;
    this.onEnd = onEnd || (() => {});
    this.onFirstFrame = onFirstFrame || (() => {});
    this.iceServers = iceServers;
    this.iceTransportPolicy = iceTransportPolicy; // 'relay': TURN-relayed candidates only
    this.session = null;
    this.seen = null; // a promise: the service accepted that the picture showed
    this.ended = false;
    this.timing = { start: performance.now() };
  }

  async start() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, iceTransportPolicy: this.iceTransportPolicy });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      this.video.srcObject = stream;
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
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

    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const reply = await api(`/api/checks/${this.checkId}/lookin`, {
      method: 'POST', body: { offer: pc.localDescription.sdp },
    });
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
