"""RTP/RTCP, codecs, DTMF, player, bridge and recorder."""
