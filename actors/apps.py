"""The names of the Serve applications that host the deployments, in one place below everything that uses
them: cluster.serve_apps deploys under these names and actors.callers addresses them. A module of its own so
that a Ray Data caller can name an app without importing the deployment (and with it torch)."""

GENERATOR_APP = "alma-generator"
JUDGE_APP = "alma-judge"
