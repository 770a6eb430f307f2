// The page's one job: send an image to /v1/restore and show it beside its restoration.
"use strict";

const $ = (id) => document.getElementById(id);
let urls = [];

function show(id, visible) { $(id).hidden = !visible; }

function fail(message) {
  show("progress", false);
  $("error").textContent = message;
  show("error", true);
}

async function describeModel() {
  try {
    const ready = await (await fetch("/readyz")).json();
    const preset = ready.preset ? `preset ${ready.preset}, ` : "";
    $("model").textContent = `Model ${ready.sha256.slice(0, 12)} (${preset}${ready.providers[0]})`;
    const limits = ready.limits;
    $("limits").textContent = `up to ${limits.max_upload_mb} MB and ${(limits.max_pixels / 1e6).toFixed(1)} megapixels`;
  } catch (e) {
    $("model").textContent = "The server did not describe its model.";
  }
}

function restore(file) {
  if (!file) return;
  urls.forEach(URL.revokeObjectURL);
  urls = [URL.createObjectURL(file)];
  show("error", false);
  show("result", false);
  show("progress", true);
  $("bar").value = 0;
  $("status").textContent = "Uploading…";
  const form = new FormData();
  form.append("file", file, file.name);
  const request = new XMLHttpRequest();
  request.open("POST", "/v1/restore");
  request.responseType = "blob";
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) $("bar").value = (100 * e.loaded) / e.total;
  };
  request.upload.onload = () => {
    $("bar").removeAttribute("value");  // indeterminate while the server restores
    $("status").textContent = "Restoring…";
  };
  request.onerror = () => fail("The server could not be reached.");
  request.onload = async () => {
    if (request.status !== 200) {
      let message = `The server answered ${request.status}.`;
      try { message = JSON.parse(await request.response.text()).error || message; } catch (e) { /* not JSON */ }
      fail(message);
      return;
    }
    const restored = URL.createObjectURL(request.response);
    urls.push(restored);
    $("before").src = $("compare-before").src = urls[0];
    $("after").src = $("compare-after").src = restored;
    const name = (request.getResponseHeader("Content-Disposition") || "").match(/filename="([^"]*)"/);
    $("download").href = restored;
    $("download").download = "restored-" + (name ? name[1] : file.name);
    $("status").textContent = "Done.";
    show("progress", false);
    show("result", true);
  };
  request.send(form);
}

$("file").addEventListener("change", () => restore($("file").files[0]));
$("slider").addEventListener("input", () => {
  $("compare-after").style.clipPath = `inset(0 0 0 ${$("slider").value}%)`;
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  restore(e.dataTransfer.files[0]);
});
describeModel();
