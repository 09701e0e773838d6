import { trainingKernels, floatView } from './src/train/nlsm/onnx-kernels.ts';
const U=1935,H=64;
const rnd=(n:number,s=0.1)=>Float32Array.from({length:n},()=>(Math.random()-0.5)*s);
for (const framed of [false, true]) {
const fw=await trainingKernels.gruForward(framed), bw=await trainingKernels.gruBackward(framed);
const feeds:any={x:floatView(rnd(U*H),[U,H]),W:floatView(rnd(H*3*H),[H,3*H]),b:floatView(rnd(3*H),[3*H]),bn:floatView(rnd(H),[H])};
if (framed) { feeds.centre=floatView(Float32Array.of(0),[]); feeds.scale=floatView(Float32Array.of(1),[]); }
for (let i=0;i<20;i++) await fw.run(feeds);
let t=performance.now(); for (let i=0;i<50;i++) await fw.run(feeds); console.log('fwd', framed, ((performance.now()-t)/50).toFixed(2));
const o=await fw.run(feeds);
const bf:any={dy:o.y,direct:o.y,h:framed?o.h:feeds.x,u:o.u,r:o.r,q:o.q,n:o.n,W:feeds.W}; if (framed) bf.scale=feeds.scale;
for (let i=0;i<20;i++) await bw.run(bf);
t=performance.now(); for (let i=0;i<50;i++) await bw.run(bf); console.log('bwd', framed, ((performance.now()-t)/50).toFixed(2));
if (process.env.KPROF) { fw.endProfiling(); bw.endProfiling(); }
}
