fetch("state").then(r=>r.json()).then(s=>{document.getElementById("app").textContent=s.mode;});
