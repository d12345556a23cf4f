/**
 * {@code autocircuit serve}: an HTTP/JSON API over the library for other tools (notebooks, dashboards, evaluation
 * harnesses). {@link org.autocircuit.serve.Server} routes requests on the JDK's HTTP server;
 * {@link org.autocircuit.serve.Catalog} lists the models and datasets under the configured folders and resolves
 * request paths without letting them leave those folders; {@link org.autocircuit.serve.JobManager} queues discover
 * jobs, runs them through {@link org.autocircuit.discovery.Discovery} on models shared through
 * {@link org.autocircuit.serve.ModelCache}, and keeps finished jobs in the state folder
 * ({@link org.autocircuit.serve.JobStore}). The API is described in docs/server.md and at {@code /openapi.json}.
 */
package org.autocircuit.serve;
