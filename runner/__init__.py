"""pipeline-run: real-time voice and video bots over WebRTC, declared in YAML."""
