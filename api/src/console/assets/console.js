// The console's only script: live parts of a page. An element with
// `data-live="URL"` is replaced by each `update` event that URL streams
// (Server-Sent Events); the browser reconnects by itself if it drops.
for (const element of document.querySelectorAll("[data-live]")) {
  const events = new EventSource(element.dataset.live);
  events.addEventListener("update", (event) => { element.innerHTML = event.data; });
}
