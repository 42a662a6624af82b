"""The vendor sandbox: one loopback server simulating every vendor API PMAP talks to."""
