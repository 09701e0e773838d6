import * as ort from 'onnxruntime-node';
import { DataType, IR_VERSION, onnx, node, valueInfo, int64Tensor } from './src/model/onnx-builder.ts';
const F=DataType.FLOAT;
async function sess(nodes:any[], inputs:any[], outputs:any[], inits:any[]=[]){
  const g=onnx.GraphProto.create({name:'t',node:nodes,initializer:inits,input:inputs.map(([n,d]:any)=>valueInfo(n,F,d)),output:outputs.map(([n,d]:any)=>valueInfo(n,F,d))});
  const m=onnx.ModelProto.create({irVersion:IR_VERSION,opsetImport:[{domain:'',version:18}],graph:g});
  return ort.InferenceSession.create(onnx.ModelProto.encode(m).finish(),{intraOpNumThreads:1,interOpNumThreads:1,executionMode:'sequential',graphOptimizationLevel:'all'});
}
const U=1935,H=64;
const rnd=(n:number)=>Float32Array.from({length:n},()=>(Math.random()-0.5)*0.1);
async function time(name:string, f:()=>Promise<unknown>, n=50){ await f(); const t=performance.now(); for(let i=0;i<n;i++) await f(); console.log(name, ((performance.now()-t)/n).toFixed(3),'ms'); }
const x=new ort.Tensor('float32',rnd(U*H),[U,H]);
// 1: gemm only [U,H]x[H,3H] with bias
const s1=await sess([node('Gemm',['x','W','b'],['y'])],[['x',['M','H']],['W',['H','G']],['b',['G']]],[['y',['M','G']]]);
const W=new ort.Tensor('float32',rnd(H*3*H),[H,3*H]), b=new ort.Tensor('float32',rnd(3*H),[3*H]);
await time('gemm+bias 3H',()=>s1.run({x,W,b}));
const s1b=await sess([node('MatMul',['x','W'],['y'])],[['x',['M','H']],['W',['H','G']]],[['y',['M','G']]]);
await time('matmul 3H',()=>s1b.run({x,W}));
// elementwise sigmoid on [U,H]
const s2=await sess([node('Sigmoid',['x'],['y'])],[['x',['M','H']]],[['y',['M','H']]]);
await time('sigmoid',()=>s2.run({x}));
const s3=await sess([node('Add',['x','x'],['y'])],[['x',['M','H']]],[['y',['M','H']]]);
await time('add',()=>s3.run({x}));
const yb=new ort.Tensor('float32',new Float32Array(U*H),[U,H]);
await time('add prealloc',()=>s3.run({x},{y:yb}));
const G=new ort.Tensor('float32',rnd(U*3*H),[U,3*H]);
const s4=await sess([node('Gemm',['x','g'],['y'],{transA:1})],[['x',['M','H']],['g',['M','G']]],[['y',['H','G']]]);
await time('gemm transA (dW)',()=>s4.run({x,g:G}));
const s5=await sess([node('Transpose',['x'],['xt'],{perm:[1,0]}),node('MatMul',['xt','g'],['y'])],[['x',['M','H']],['g',['M','G']]],[['y',['H','G']]]);
await time('transpose+matmul (dW)',()=>s5.run({x,g:G}));
const s6=await sess([node('Gemm',['g','W'],['y'],{transB:1})],[['g',['M','G']],['W',['H','G']]],[['y',['M','H']]]);
await time('gemm transB (dh)',()=>s6.run({g:G,W}));
const s7=await sess([node('Transpose',['W'],['wt'],{perm:[1,0]}),node('MatMul',['g','wt'],['y'])],[['g',['M','G']],['W',['H','G']]],[['y',['M','H']]]);
await time('transpose+matmul (dh)',()=>s7.run({g:G,W}));
