"""Chromium as staff run it, and what the tests and the TTFF bench read from its peers."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import FLAGS

#: real staff browsers hide their local addresses behind mDNS names: unlike the other
#: browser tests, no WebRtcHideLocalIpsWithMdns switch
DEFAULT_WEBRTC_FLAGS = [f for f in FLAGS if "WebRtcHideLocalIpsWithMdns" not in f]

#: an init script: every RTCPeerConnection the page makes, with the configuration it got
RECORD_PEERS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.nattPeers = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) {
      super(config, ...rest);
      window.nattPeers.push({ pc: this, config: JSON.parse(JSON.stringify(config || {})) });
    }
  };
})();
"""

#: the selected candidate pair of the page's last peer, as getStats reports it
SELECTED_PAIR = """
async () => {
  const pc = window.nattPeers[window.nattPeers.length - 1].pc;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) {
      pair = stats.get(r.selectedCandidatePairId);
    }
  });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return { state: pair.state, local: local.candidateType, remote: remote.candidateType,
           localUrl: local.url || null, remoteAddress: remote.address, remotePort: remote.port,
           bytesReceived: pair.bytesReceived };
}
"""

#: the page's peers: whether each has its offer made and gathered, and is still open
PEERS = """() => window.nattPeers.map(({ pc }) => ({
  sdp: pc.localDescription ? pc.localDescription.sdp : null,
  gathered: pc.iceGatheringState === 'complete',
  closed: pc.signalingState === 'closed',
}))"""


def wait_playing(page: Any, timeout_ms: int = 15_000, width: int = 0) -> None:
    """The staff page's look-in video shows a picture (wider than ``width``) and moves on."""
    page.wait_for_function(
        "(w) => { const v = document.getElementById('lookin-video');"
        " return v && v.videoWidth > w && v.currentTime > 0; }", arg=width, timeout=timeout_ms)
    t0 = page.evaluate("document.getElementById('lookin-video').currentTime")
    page.wait_for_timeout(700)
    assert page.evaluate("document.getElementById('lookin-video').currentTime") > t0, \
        "the video plays"
