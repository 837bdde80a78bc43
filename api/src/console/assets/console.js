// The console's only script: live parts of a page. An element with
// `data-live="URL"` is replaced by each `update` event that URL streams
// (Server-Sent Events); the browser reconnects by itself if it drops.
for (const element of document.querySelectorAll("[data-live]")) {
  const events = new EventSource(element.dataset.live);
  events.addEventListener("update", (event) => { element.innerHTML = event.data; });
}

// A transcript's segments play the recording from their start; the one
// being heard is marked as it plays.
const player = document.getElementById("player");
if (player) {
  const segments = [...document.querySelectorAll(".segment[data-start]")];
  for (const segment of segments) {
    segment.addEventListener("click", () => {
      player.currentTime = Number(segment.dataset.start);
      player.play();
    });
  }
  player.addEventListener("timeupdate", () => {
    let current = null;
    for (const segment of segments) {
      if (Number(segment.dataset.start) <= player.currentTime) current = segment;
    }
    for (const segment of segments) segment.closest("li").classList.toggle("playing", segment === current);
  });
}
