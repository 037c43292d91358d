// Copy buttons: <button data-copy="id-of-element">. The dashboard works without this script.
document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-copy]");
  if (!b) return;
  const el = document.getElementById(b.dataset.copy);
  if (!el || !navigator.clipboard) return;
  navigator.clipboard.writeText(el.textContent.trim()).then(() => {
    const label = b.textContent;
    b.textContent = "Copied";
    setTimeout(() => { b.textContent = label; }, 1500);
  });
});
